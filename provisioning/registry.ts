/**
 * The station's provisioning registry: one nedb-promises document per pack attempt (who, where,
 * when, the result and why, the key fingerprint and the certificate), the source of truth for
 * "is this serial or key already in use" and for the revoked entries of the line CRL. nedb never
 * fsyncs its appends (NOTES.md), so every write here is followed by an fsync of the datafile: a
 * PASS the technician saw survives a power cut. A power cut can still tear the last line; nedb's
 * corruption threshold would then refuse a small file (1 bad line in 6 is over 10 %), so the file
 * is checked here first — a bad last line is dropped (nedb rewrites the file without it), a bad
 * line anywhere else stops the station with REGISTRY. nedb keeps the file in memory and rewrites
 * it on load, so two writers would lose each other's records: a writer holds `<file>.lock` (its
 * pid; a dead holder's lock is taken over), and `list`/`show` open read-only without loading
 * through nedb at all.
 */
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import Datastore from 'nedb-promises';
import { normaliseSerial, type CrlReason, type RevokedCert } from '../protocol/index.js';
import { ProvisioningError, type PackFailureCode } from './errors.js';

/** The registry's file name in the station directory. */
export const REGISTRY_FILE = 'registry.db';

export type AttemptResult = 'PENDING' | 'PASS' | 'FAIL';
/** Certificate status: active (PASS, in use), revoked (on the CRL), none (no cert issued). */
export type CertStatus = 'none' | 'active' | 'revoked';

export interface AttemptRecord {
  id: string; // random UUID
  serial: string;
  model: string;
  port: string;
  station: string;
  operator: string;
  startedAt: string; // ISO-8601 UTC
  finishedAt?: string;
  result: AttemptResult;
  code?: PackFailureCode;
  reason?: string;
  step?: string;
  durationMs?: number;
  firmware?: string;
  alg?: 'ES256' | 'Ed25519';
  /** protocol keyFingerprint of the device public key (lowercase hex). */
  keyFingerprint?: string;
  certPem?: string;
  /** Normalised certificate serial (uppercase hex, no leading zeros). */
  certSerialHex?: string;
  /** SHA-256 of the certificate DER, lowercase hex. */
  certSha256?: string;
  certNotAfter?: string;
  certStatus: CertStatus;
  revokedAt?: string;
  revocationReason?: CrlReason | 'unspecified';
  /** Free text, e.g. "selftest failed", "re-provisioned with --force". */
  revocationNote?: string;
}

export interface RegistryOpenOptions {
  /** Query only: no lock, no nedb load (which would rewrite the file under a running writer). */
  readOnly?: boolean;
  now?: () => Date;
}

/** Stored form: nedb's _id is the record id; seq orders attempts exactly (timestamps can tie). */
type Doc = Omit<AttemptRecord, 'id'> & { _id: string; seq: number };

const INDEXED = ['serial', 'keyFingerprint', 'certSerialHex', 'certSha256', 'result', 'certStatus'] as const;

function registryError(message: string, cause?: unknown): ProvisioningError {
  return new ProvisioningError('REGISTRY', `provisioning: registry ${message}`, cause === undefined ? undefined : { cause });
}

function toRecord(d: Doc): AttemptRecord {
  const { _id, seq: _seq, ...rest } = d;
  return { id: _id, ...rest };
}

/**
 * Checks the datafile line by line (JSON per line, as nedb writes it). Returns the documents in
 * file order and whether a bad last line was dropped; throws REGISTRY for a bad line before the
 * last — that is not a torn append but damage a person must look at.
 */
export function scanDataFile(text: string, path: string): { lines: Record<string, unknown>[]; tornLine: boolean } {
  const raw = text.split('\n');
  let last = raw.length - 1;
  while (last >= 0 && raw[last] === '') last--;
  const lines: Record<string, unknown>[] = [];
  let tornLine = false;
  for (let i = 0; i <= last; i++) {
    const line = raw[i] ?? '';
    if (line === '') continue;
    try {
      const v: unknown = JSON.parse(line);
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
      lines.push(v as Record<string, unknown>);
    } catch (e) {
      if (i === last) tornLine = true;
      else throw registryError(`${path}: line ${i + 1} is damaged (not a JSON document); move the file aside and restore it from a backup`, e);
    }
  }
  return { lines, tornLine };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes `<file>.lock` for this process; a lock whose holder is dead is taken over. Throws REGISTRY. */
function takeLock(lockPath: string): void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(lockPath, 'wx', 0o600);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw registryError(`lock ${lockPath}: ${(e as Error).message}`, e);
    }
    let holder = NaN;
    try {
      holder = Number.parseInt(readFileSync(lockPath, 'utf8'), 10);
    } catch {
      // removed meanwhile: retry
    }
    if (holder === process.pid) return; // this process already holds it (a second instance; see the module comment)
    if (Number.isSafeInteger(holder) && holder > 0 && pidAlive(holder)) {
      throw registryError(`is in use by process ${holder} (another \`packchain provision\` writer); stop it first, or wait for it to finish`);
    }
    try {
      unlinkSync(lockPath); // stale: its holder is gone
    } catch {
      // another process took it over first: retry
    }
  }
  throw registryError(`lock ${lockPath}: could not be taken`);
}

export class Registry {
  private closed = false;

  private constructor(
    private readonly db: Datastore<Doc>,
    readonly path: string,
    private readonly lockPath: string | undefined,
    private seq: number,
    private readonly now: () => Date,
    /** True when the last line of the file was torn (a power cut mid-append) and dropped on open. */
    readonly recoveredTornLine: boolean,
  ) {}

  /**
   * Opens (creating if needed, mode 0600) the registry at `path`. Throws REGISTRY when the file is
   * unreadable, damaged before its last line, or held by another live writer.
   */
  static async open(path: string, opts: RegistryOpenOptions = {}): Promise<Registry> {
    let text = '';
    try {
      if (existsSync(path)) text = readFileSync(path, 'utf8');
    } catch (e) {
      throw registryError(`${path}: unreadable (${(e as NodeJS.ErrnoException).code ?? 'error'})`, e);
    }
    const scan = scanDataFile(text, path);
    const now = opts.now ?? (() => new Date());
    if (opts.readOnly === true) {
      const db = Datastore.create({ inMemoryOnly: true }) as unknown as Datastore<Doc>;
      const byId = new Map<string, Doc>();
      for (const d of scan.lines) {
        if (typeof d._id !== 'string') continue; // index records
        if (d.$$deleted === true) byId.delete(d._id);
        else byId.set(d._id, d as unknown as Doc);
      }
      await db.insert([...byId.values()]);
      return new Registry(db, path, undefined, 0, now, scan.tornLine);
    }
    const lockPath = `${path}.lock`;
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    } catch (e) {
      throw registryError(`${path}: cannot create its directory (${(e as NodeJS.ErrnoException).code ?? 'error'})`, e);
    }
    takeLock(lockPath);
    try {
      // The scan above already refused damage before the last line, so nedb may skip what is left.
      const options = { filename: path, corruptAlertThreshold: 1, modes: { fileMode: 0o600, dirMode: 0o700 } };
      const db = Datastore.create(options) as unknown as Datastore<Doc>;
      await db.load();
      for (const fieldName of INDEXED) await db.ensureIndex({ fieldName });
      const top = await db.find({}).sort({ seq: -1 }).limit(1);
      const reg = new Registry(db, path, lockPath, top[0]?.seq ?? 0, now, scan.tornLine);
      reg.fsync();
      return reg;
    } catch (e) {
      rmSync(lockPath, { force: true });
      if (e instanceof ProvisioningError) throw e;
      throw registryError(`${path}: cannot load it: ${(e as Error).message}`, e);
    }
  }

  private writable(): void {
    if (this.closed) throw registryError(`${this.path}: already closed`);
    if (this.lockPath === undefined) throw registryError(`${this.path}: opened read-only`);
  }

  /** nedb appended without fsync; make the append durable before reporting it. */
  private fsync(): void {
    try {
      const fd = openSync(this.path, 'r+');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      throw registryError(`${this.path}: fsync failed: ${(e as Error).message}`, e);
    }
  }

  private async write<T>(what: string, op: () => Promise<T>): Promise<T> {
    this.writable();
    let out: T;
    try {
      out = await op();
    } catch (e) {
      throw registryError(`${this.path}: ${what} failed: ${(e as Error).message}`, e);
    }
    this.fsync();
    return out;
  }

  /** Records a new PENDING attempt (certStatus none), durably. Throws REGISTRY. */
  async begin(a: Pick<AttemptRecord, 'serial' | 'model' | 'port' | 'station' | 'operator'>): Promise<AttemptRecord> {
    const doc: Doc = {
      _id: randomUUID(),
      seq: ++this.seq,
      serial: a.serial,
      model: a.model,
      port: a.port,
      station: a.station,
      operator: a.operator,
      startedAt: this.now().toISOString(),
      result: 'PENDING',
      certStatus: 'none',
    };
    return toRecord(await this.write('insert', () => this.db.insert(doc)));
  }

  /**
   * Sets the given fields (undefined ones are left alone; `id` cannot change), durably. Hex fields
   * are normalised (fingerprint and sha256 lowercase, certificate serial as normaliseSerial).
   * Throws NOT_FOUND for an unknown id, REGISTRY when the write fails.
   */
  async update(id: string, patch: Partial<AttemptRecord>): Promise<AttemptRecord> {
    const set: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(patch) as [string, unknown][]) if (k !== 'id' && v !== undefined) set[k] = v;
    if (typeof set.keyFingerprint === 'string') set.keyFingerprint = set.keyFingerprint.toLowerCase();
    if (typeof set.certSha256 === 'string') set.certSha256 = set.certSha256.toLowerCase();
    if (typeof set.certSerialHex === 'string') set.certSerialHex = normaliseSerial(set.certSerialHex);
    // nedb resolves undefined (its typings say null) when nothing matched.
    const doc = (await this.write('update', () => this.db.update<Doc>({ _id: id }, { $set: set }, { returnUpdatedDocs: true }))) as Doc | null | undefined;
    if (doc === null || doc === undefined) throw new ProvisioningError('NOT_FOUND', `provisioning: registry has no attempt with id ${id}`);
    return toRecord(doc);
  }

  private async newest(query: Record<string, unknown>): Promise<AttemptRecord | undefined> {
    const docs = await this.query(query, -1, 1);
    return docs[0];
  }

  private async query(query: Record<string, unknown>, order: 1 | -1, limit?: number): Promise<AttemptRecord[]> {
    if (this.closed) throw registryError(`${this.path}: already closed`);
    try {
      const cursor = this.db.find(query).sort({ seq: order });
      const docs = limit === undefined ? await cursor : await cursor.limit(limit);
      return docs.map(toRecord);
    } catch (e) {
      throw registryError(`${this.path}: query failed: ${(e as Error).message}`, e);
    }
  }

  /** The record holding the active certificate for this pack serial. */
  activeBySerial(serial: string): Promise<AttemptRecord | undefined> {
    return this.newest({ serial, certStatus: 'active' });
  }

  /** The record holding the active certificate for this key fingerprint (a cloned key shows here). */
  activeByKey(fingerprint: string): Promise<AttemptRecord | undefined> {
    return this.newest({ keyFingerprint: fingerprint.toLowerCase(), certStatus: 'active' });
  }

  /** The record of the certificate with this SHA-256 (hex, any case), whatever its status. */
  byCertSha256(hex: string): Promise<AttemptRecord | undefined> {
    return this.newest({ certSha256: hex.toLowerCase() });
  }

  /** Every revoked certificate, for the CRL (reason "unspecified" is expressed by omission, RFC 5280 §5.3.1). */
  async revokedCerts(): Promise<RevokedCert[]> {
    const out: RevokedCert[] = [];
    for (const r of await this.query({ certStatus: 'revoked' }, 1)) {
      if (r.certSerialHex === undefined) continue;
      const date = new Date(r.revokedAt ?? r.finishedAt ?? r.startedAt);
      const reason = r.revocationReason === 'unspecified' ? undefined : r.revocationReason;
      out.push({ serialHex: r.certSerialHex, date, ...(reason === undefined ? {} : { reason }) });
    }
    return out;
  }

  /** PENDING attempts (a station crash mid-attempt), oldest first — the station fails and revokes them on start. */
  pending(): Promise<AttemptRecord[]> {
    return this.query({ result: 'PENDING' }, 1);
  }

  /** Attempts, newest first, optionally by serial, result and start time. */
  list(q: { serial?: string; result?: AttemptResult; since?: Date; limit?: number } = {}): Promise<AttemptRecord[]> {
    const query: Record<string, unknown> = {};
    if (q.serial !== undefined) query.serial = q.serial;
    if (q.result !== undefined) query.result = q.result;
    // ISO-8601 UTC strings of toISOString() order like the instants they name.
    if (q.since !== undefined) query.startedAt = { $gte: q.since.toISOString() };
    return this.query(query, -1, q.limit);
  }

  /** Every attempt for a pack serial, oldest first. */
  history(serial: string): Promise<AttemptRecord[]> {
    return this.query({ serial }, 1);
  }

  /** Waits for writes in flight and releases the lock. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    // nedb runs operations in order: a query queued now completes after every earlier write.
    await this.db.count({}).catch(() => 0);
    this.closed = true;
    if (this.lockPath !== undefined) {
      try {
        if (Number.parseInt(readFileSync(this.lockPath, 'utf8'), 10) === process.pid) unlinkSync(this.lockPath);
      } catch {
        // already gone
      }
    }
  }
}
