/**
 * One query layer over two PostgreSQL drivers (docs/ledger.md "Storage"): the embedded default is
 * PGlite (PostgreSQL compiled to WASM, its data directory on disk, one process at a time, guarded by
 * a lock file), the scale-out backend is a real PostgreSQL server through node-postgres (a pool;
 * several ledger processes share one database). The SQL, the schema and the migrations are the same
 * for both — only the driver differs — so every storage test runs against both.
 *
 * Both drivers are set up to return the same JavaScript values: int8 as a number (every integer the
 * ledger stores is below 2^53: log indexes, counters, ms times), bytea as a Uint8Array. Driver
 * failures become LedgerError STORAGE naming the statement; a PostgreSQL error keeps its SQLSTATE in
 * `sqlState` of the cause so callers can retry serialization failures and deadlocks.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { LedgerError } from '../errors.js';

/** A row as the drivers return it. */
export type Row = Record<string, unknown>;

/** Runs statements; inside a transaction, on that transaction's connection. */
export interface Queryable {
  query<R extends object = Row>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /**
   * Like query, but each row is an array of its values in column order, not normalised (bytea stays
   * as the driver returns it): for big reads, where building one object per row costs more than the
   * SQL (history pages of 100 k rows).
   */
  queryArrays(sql: string, params?: readonly unknown[]): Promise<unknown[][]>;
}

export interface Db extends Queryable {
  /** 'embedded' (PGlite) or 'postgres'. */
  readonly kind: 'embedded' | 'postgres';
  /**
   * Runs `fn` in one transaction (READ COMMITTED), committed when it resolves and rolled back when
   * it throws (the error is rethrown). A deadlock or serialization failure is retried a few times.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

const INT8_OID = 20;
const RETRYABLE = new Set(['40001', '40P01']);

function sqlStateOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

function storageError(e: unknown, sql: string): unknown {
  if (e instanceof LedgerError) return e;
  const first = sql.trim().split(/\s+/).slice(0, 4).join(' ');
  const state = sqlStateOf(e);
  const msg = e instanceof Error ? e.message : String(e);
  return new LedgerError('STORAGE', `ledger: database statement "${first} …" failed${state !== undefined ? ` (SQLSTATE ${state})` : ''}: ${msg}`, { cause: e });
}

/** True when `e` (a STORAGE error or a driver error) is a deadlock or serialization failure. */
export function isRetryable(e: unknown): boolean {
  const inner = e instanceof LedgerError ? e.cause : e;
  const state = sqlStateOf(inner);
  return state !== undefined && RETRYABLE.has(state);
}

function toBytes(v: unknown): unknown {
  return Buffer.isBuffer(v) ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : v;
}

/** Normalises a row: Buffers (node-postgres bytea) to plain Uint8Arrays, so both drivers look alike. */
function normalise<R extends object>(rows: readonly Row[]): R[] {
  for (const r of rows) for (const k of Object.keys(r)) r[k] = toBytes(r[k]);
  return rows as unknown as R[];
}

async function withRetry<T>(attempt: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await attempt();
    } catch (e) {
      if (i >= 4 || !isRetryable(e)) throw e;
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 20 * (i + 1)));
    }
  }
}

/** node-postgres: a pool on a PostgreSQL server. */
class PostgresDb implements Db {
  readonly kind = 'postgres';
  constructor(private readonly pool: pg.Pool) {}

  async query<R extends object = Row>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
    try {
      const r = await this.pool.query(sql, params as unknown[]);
      return normalise<R>(r.rows as Row[]);
    } catch (e) {
      throw storageError(e, sql);
    }
  }

  async queryArrays(sql: string, params: readonly unknown[] = []): Promise<unknown[][]> {
    try {
      return (await this.pool.query<unknown[]>({ text: sql, values: params as unknown[], rowMode: 'array' })).rows;
    } catch (e) {
      throw storageError(e, sql);
    }
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return withRetry(async () => {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (e) {
        throw storageError(e, 'connect');
      }
      const tx: Queryable = {
        query: async <R extends object = Row>(sql: string, params: readonly unknown[] = []): Promise<R[]> => {
          try {
            const r = await client.query(sql, params as unknown[]);
            return normalise<R>(r.rows as Row[]);
          } catch (e) {
            throw storageError(e, sql);
          }
        },
        queryArrays: async (sql: string, params: readonly unknown[] = []): Promise<unknown[][]> => {
          try {
            return (await client.query<unknown[]>({ text: sql, values: params as unknown[], rowMode: 'array' })).rows;
          } catch (e) {
            throw storageError(e, sql);
          }
        },
      };
      let broken = false;
      try {
        await tx.query('BEGIN');
        const out = await fn(tx);
        await tx.query('COMMIT');
        return out;
      } catch (e) {
        try {
          await client.query('ROLLBACK');
        } catch {
          broken = true; // the connection is gone: do not return it to the pool
        }
        throw e;
      } finally {
        client.release(broken);
      }
    });
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** PGlite: one embedded database, one connection; its own mutex serialises transactions. */
class EmbeddedDb implements Db {
  readonly kind = 'embedded';
  constructor(
    private readonly db: PGlite,
    private readonly lockFile: string,
  ) {}

  async query<R extends object = Row>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
    try {
      const r = await this.db.query<R>(sql, params as unknown[]);
      return r.rows;
    } catch (e) {
      throw storageError(e, sql);
    }
  }

  async queryArrays(sql: string, params: readonly unknown[] = []): Promise<unknown[][]> {
    try {
      return (await this.db.query<unknown[]>(sql, params as unknown[], { rowMode: 'array' })).rows;
    } catch (e) {
      throw storageError(e, sql);
    }
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.db.transaction(async (t) => {
      const tx: Queryable = {
        query: async <R extends object = Row>(sql: string, params: readonly unknown[] = []): Promise<R[]> => {
          try {
            return (await t.query<R>(sql, params as unknown[])).rows;
          } catch (e) {
            throw storageError(e, sql);
          }
        },
        queryArrays: async (sql: string, params: readonly unknown[] = []): Promise<unknown[][]> => {
          try {
            return (await t.query<unknown[]>(sql, params as unknown[], { rowMode: 'array' })).rows;
          } catch (e) {
            throw storageError(e, sql);
          }
        },
      };
      return fn(tx);
    });
  }

  async close(): Promise<void> {
    try {
      await this.db.close();
    } finally {
      rmSync(this.lockFile, { force: true });
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the embedded store's lock file (`ledger.lock`, holding the owner's pid). A lock left by a
 * dead process is taken over; one held by a live process throws STORAGE_LOCKED.
 */
function takeLock(file: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new LedgerError('STORAGE_CONFIG', `ledger: cannot create the lock file ${file}: ${(e as Error).message}`, { cause: e });
      }
      let pid = NaN;
      try {
        pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
      } catch {
        // unreadable or vanished: treat as stale
      }
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new LedgerError('STORAGE_LOCKED', `ledger: the embedded store ${file} is in use by process ${pid} (stop that ledger first)`);
      }
      if (pid === process.pid) {
        throw new LedgerError('STORAGE_LOCKED', `ledger: the embedded store ${file} is already open in this process`);
      }
      rmSync(file, { force: true });
    }
  }
  throw new LedgerError('STORAGE_LOCKED', `ledger: cannot take the lock file ${file}`);
}

/** Opens the embedded store in `dir` (created 0700 if missing): PGlite data in `dir/pgdata`. */
export async function openEmbedded(dir: string): Promise<Db> {
  if (typeof dir !== 'string' || dir === '') throw new LedgerError('STORAGE_CONFIG', 'ledger: embedded storage needs a directory');
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new LedgerError('STORAGE_CONFIG', `ledger: cannot create the storage directory ${dir}: ${(e as Error).message}`, { cause: e });
  }
  const lockFile = join(dir, 'ledger.lock');
  takeLock(lockFile);
  try {
    const db = await PGlite.create(join(dir, 'pgdata'), { parsers: { [INT8_OID]: (v: string) => Number(v) } });
    return new EmbeddedDb(db, lockFile);
  } catch (e) {
    rmSync(lockFile, { force: true });
    throw new LedgerError('STORAGE', `ledger: cannot open the embedded database in ${dir}: ${(e as Error).message}`, { cause: e });
  }
}

/** Connects a pool to a PostgreSQL server and checks it answers. */
export async function openPostgres(url: string, poolSize = 10): Promise<Db> {
  if (!Number.isSafeInteger(poolSize) || poolSize < 1 || poolSize > 1000) {
    throw new LedgerError('STORAGE_CONFIG', `ledger: postgres poolSize must be an integer in 1..1000, got ${poolSize}`);
  }
  if (!/^postgres(ql)?:\/\//.test(url)) throw new LedgerError('STORAGE_CONFIG', 'ledger: postgres URL must start with postgres:// or postgresql://');
  const types = new pg.TypeOverrides();
  types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));
  const pool = new pg.Pool({ connectionString: url, max: poolSize, types });
  // An idle client losing its connection must not crash the process; the next query reports it.
  pool.on('error', () => undefined);
  const db = new PostgresDb(pool);
  try {
    await db.query('SELECT 1');
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw e;
  }
  return db;
}
