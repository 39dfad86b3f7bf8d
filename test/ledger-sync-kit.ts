/**
 * Test support for test/ledger-sync.test.ts: `packchain ledger …` spawned as child processes
 * (`node --import tsx cli/main.ts ledger …`, like the gateway kit), a gateway config pointed at a
 * ledger (the gateway-run kit's operator set-up plus an `upstream` section, and a gateway name of
 * our choosing), a fresh PostgreSQL database per test file on the machine's server, and a small
 * client for the service-engineer API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { createKeyFile } from '../gateway/index.js';
import { until } from './gateway-ingest-testkit.js';
import { packchain, ROOT, type RunSetup } from './gateway-run-kit.js';

export const PG_ADMIN_URL = 'postgres://root@127.0.0.1:5432/test';

/** Runs `packchain ledger <args>` to completion. */
export const ledgerCli = (args: readonly string[]): ReturnType<typeof packchain> => packchain(['ledger', ...args]);

/** A running `ledger run` child. */
export class LedgerProcess {
  out = '';
  err = '';
  url = '';

  private constructor(readonly child: ChildProcess) {}

  /** Starts `ledger run` with `args` (storage, trust, listen) and waits until it listens. */
  static async start(args: readonly string[]): Promise<LedgerProcess> {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/main.ts'), 'ledger', 'run', '--no-web', '--verify-threads', '1', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const l = new LedgerProcess(child);
    child.stdout.on('data', (b: Buffer) => {
      l.out += b.toString();
      if (l.url === '') l.url = /ledger: listening on (http:\/\/[^"\s]+)/.exec(l.out)?.[1] ?? '';
    });
    child.stderr.on('data', (b: Buffer) => (l.err += b.toString()));
    await until(() => l.url !== '' || child.exitCode !== null, 'the ledger to listen', 60_000);
    if (child.exitCode !== null) throw new Error(`ledger run exited ${child.exitCode}: ${l.err}${l.out}`);
    return l;
  }

  /** Sends `signal` and waits for the exit; returns the exit code (null after a kill signal). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await until(() => this.child.exitCode !== null || this.child.signalCode !== null, 'the ledger to exit', 30_000);
    return this.child.exitCode;
  }

  lines(): Record<string, unknown>[] {
    return this.out
      .split('\n')
      .filter((x) => x.startsWith('{'))
      .map((x) => JSON.parse(x) as Record<string, unknown>);
  }
}

/**
 * Points the gateway of `s` at `ledgerUrl` as gateway `name` (a new key file when the name is not
 * the kit's "test-gw"); returns its verifier key. `extra` merges into the config (e.g. log quota);
 * `configPath`, `ports` and `dataDir` make a second gateway's config from the kit's one.
 */
export async function syncConfig(
  s: RunSetup,
  o: { name: string; ledgerUrl: string; witnessKey?: string; extra?: Record<string, unknown>; configPath?: string; ports?: readonly string[]; dataDir?: string },
): Promise<string> {
  const config = JSON.parse(readFileSync(s.configPath, 'utf8')) as Record<string, unknown>;
  if (o.ports !== undefined) {
    const t = config['transports'] as { serial: Record<string, unknown> };
    t.serial['ports'] = o.ports;
  }
  if (o.dataDir !== undefined) config['dataDir'] = o.dataDir;
  let vkey = s.verifierKey;
  if (o.name !== config['name']) {
    const keyFile = join(s.dir, `${o.name}.key`);
    vkey = (await createKeyFile(keyFile, o.name)).verifierKey;
    config['keyFile'] = keyFile;
    config['name'] = o.name;
  }
  config['upstream'] = { url: o.ledgerUrl, intervalMs: 200, timeoutMs: 5000, backoffBaseMs: 100, backoffMaxMs: 1000, ...(o.witnessKey === undefined ? {} : { witnessKey: o.witnessKey }) };
  config['log'] = { checkpoint: { everyEntries: 20, everyMs: 300 } };
  writeFileSync(o.configPath ?? s.configPath, JSON.stringify({ ...config, ...o.extra }, null, 2));
  return vkey;
}

/** A fresh database on the machine's PostgreSQL; `drop()` removes it. */
export async function freshDatabase(prefix: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${process.pid}_${Date.now()}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return {
    url: `postgres://root@127.0.0.1:5432/${name}`,
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

export interface HistoryRowLite {
  readonly serial: string;
  readonly counter: number;
  readonly origin: string;
  readonly sightings: number;
  readonly witnessed: boolean;
}

/** GET a service-engineer API path with the token; returns status and parsed JSON (or text). */
export async function api(url: string, token: string, path: string): Promise<{ status: number; body: unknown; text: string }> {
  const r = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const text = await r.text();
  let body: unknown = undefined;
  try {
    body = JSON.parse(text);
  } catch {
    // CSV, proof text
  }
  return { status: r.status, body, text };
}

/** Every history row of `serial` (paging with `after`). */
export async function allHistory(url: string, token: string, serial: string): Promise<HistoryRowLite[]> {
  const rows: HistoryRowLite[] = [];
  let after: number | null = null;
  for (;;) {
    const r = await api(url, token, `/api/v1/packs/${serial}/history?limit=1000${after === null ? '' : `&after=${after}`}`);
    if (r.status === 404) return rows;
    if (r.status !== 200) throw new Error(`history ${serial}: ${r.status} ${r.text}`);
    const b = r.body as { rows: HistoryRowLite[]; next: number | null };
    rows.push(...b.rows);
    if (b.next === null) return rows;
    after = b.next;
  }
}

/** A TCP port free on 127.0.0.1 right now (for a child process to listen on). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => { r(); }));
  return port;
}
