/**
 * Ledger benchmarks (issue 7 item 8): catch-up of a gateway backlog — every frame verified again,
 * the tree rebuilt, checkpoints cosigned, frames stored once — as a ratio to raw Ed25519 verify ×
 * cores — a 1 M-entry backlog (the issue's size) on PostgreSQL, its first 100 k entries on the
 * embedded store (all of it with BENCH_LARGE=1); and one pack's history (100 k rows) among 1 M
 * entries on PostgreSQL (10 M with BENCH_LARGE=1). The backlog is signed and encoded once, before
 * any timing. Run alone: `node dist/bench/ledger-catchup.js` after `tsc -p tsconfig.bench.json`.
 *
 * On a shared machine the wall-clock ratio swings with other processes' load (raw verify is
 * measured in a few hundred ms just before and after, the catch-up takes minutes; the ratio uses
 * the mean of the two), so catch-up is also reported as a
 * CPU ratio: CPU time of one raw verify ÷ CPU time the ledger spends per entry (its process, all
 * threads, plus the PostgreSQL server processes serving it, read from /proc). That is the ratio the
 * catch-up reaches on idle cores when verification and database work overlap perfectly; the
 * wall-clock ratio approaches it as the machine gets quieter.
 */
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { DEFAULT_IN_FLIGHT } from '../gateway/index.js';
import { Ledger } from '../ledger/ledger.js';
import { embeddedStorage, postgresStorage, T0, TestFactory, TestGateway, testWitness, type TestStorage } from '../ledger/ledger-testkit.js';
import { baselineVerifyRate, formatTable, processCpuMs, startProfiler, stopProfiler, threadCpuMs, type Result } from './harness.js';

const LARGE = process.env['BENCH_LARGE'] === '1';
/** Leaves per upload (BENCH_BATCH=n to compare). */
const BATCH = Number(process.env['BENCH_BATCH'] ?? 8192);
/** Uploads on the wire at once: the sync client's default (BENCH_IN_FLIGHT=n to compare). */
const IN_FLIGHT = Number(process.env['BENCH_IN_FLIGHT'] ?? DEFAULT_IN_FLIGHT);
const UPLOAD = '/v1/gateway/upload';
/** BENCH_PROFILE=path: a main-thread CPU profile of each timed catch-up, written to path-<storage>.cpuprofile. */
const PROFILE = process.env['BENCH_PROFILE'];
/** BENCH_THREADS=1: print each thread's CPU µs per entry of each timed catch-up (Linux /proc). */
const THREADS = process.env['BENCH_THREADS'] === '1';

/** CPU µs of one raw Ed25519 verify (cached key), median of 3 rounds of 5000. */
export function verifyCpuUs(): number {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const msg = Buffer.alloc(200, 7);
  const sig = sign(null, msg, privateKey);
  const rounds: number[] = [];
  for (let r = 0; r < 3; r++) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < 5000; i++) if (!verify(null, msg, publicKey, sig)) throw new Error('baseline verify failed');
    const c = process.cpuUsage(c0);
    rounds.push((c.user + c.system) / 5000);
  }
  return rounds.sort((a, b) => a - b)[1] ?? 0;
}

/** PIDs of the PostgreSQL server processes serving connections to `url` (other than this query's). */
async function backendPids(url: string): Promise<number[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
    return r.rows.map((x) => x.pid);
  } finally {
    await c.end();
  }
}

interface CatchUp {
  readonly entries: number;
  /** Entries per second, wall clock. */
  readonly rate: number;
  /** CPU µs per entry: the ledger's process (all threads) and the PostgreSQL processes serving it. */
  readonly nodeUs: number;
  readonly dbUs: number | undefined;
}

/** A gateway's backlog as upload bodies of BATCH leaves from 20 packs, each with a checkpoint: built once, caught up on each storage. */
interface Backlog {
  readonly factory: TestFactory;
  readonly gw: TestGateway;
  /** Upload i carries leaves [i × BATCH, min(entries, (i + 1) × BATCH)). */
  readonly bodies: readonly Uint8Array[];
  readonly entries: number;
}

export async function backlog(entries: number): Promise<Backlog> {
  const factory = await TestFactory.create('Bench');
  const packs = await Promise.all(Array.from({ length: 20 }, (_, i) => factory.pack(`PK-BENCH-${String(i).padStart(4, '0')}`)));
  const gw = new TestGateway('bench', 5);
  for (let i = 0; i < entries; i++) {
    const p = packs[i % packs.length];
    if (p !== undefined) gw.append(p, p.frame(Math.floor(i / packs.length)));
  }
  // The gateway's side (CBOR-encoding each request) is not the ledger's work: done before timing.
  const bodies: Uint8Array[] = [];
  for (let from = 0; from < entries; from += BATCH) {
    // Each upload carries the chains its leaves name (all 20 packs here), as the sync client sends them.
    bodies.push(gw.body(gw.request(from, Math.min(entries, from + BATCH), packs, { proofFrom: from })));
  }
  return { factory, gw, bodies, entries };
}

/** Catches up the first `uploads` uploads of `b` (all by default) on a fresh ledger over `storage`. */
export async function catchUp(storage: TestStorage, b: Backlog, uploads = b.bodies.length): Promise<CatchUp> {
  const { gw } = b;
  const bodies = b.bodies.slice(0, uploads);
  const entries = Math.min(b.entries, uploads * BATCH);
  const ledger = await Ledger.open({ storage: storage.options, witness: testWitness(), trust: await b.factory.trust(), clock: () => T0 });
  try {
    await ledger.enrollGateway(gw.vkey);
    const pids = storage.options.kind === 'postgres' ? await backendPids(storage.options.url) : [];
    const profiler = PROFILE === undefined ? undefined : await startProfiler();
    const threads0 = THREADS ? threadCpuMs() : undefined;
    const db0 = new Map(pids.map((pid) => [pid, processCpuMs(pid)]));
    const cpu0 = process.cpuUsage();
    const start = process.hrtime.bigint();
    // As the gateway's sync client sends them: up to IN_FLIGHT uploads at once, answers taken in order.
    const send = async (body: Uint8Array): Promise<void> => {
      const who = await ledger.authenticateGateway(gw.authorize('POST', UPLOAD, body, T0), 'POST', UPLOAD, body);
      const r = await ledger.upload(who, body);
      if (r.rejected > 0) throw new Error(`bench: the ledger rejected ${r.rejected} leaves (${r.rejects[0]?.code ?? '?'})`);
    };
    const wire: Promise<void>[] = [];
    for (const body of bodies) {
      if (wire.length >= IN_FLIGHT) await wire.shift();
      const p = send(body);
      p.catch(() => undefined); // awaited in turn below
      wire.push(p);
    }
    for (const p of wire) await p;
    const s = Number(process.hrtime.bigint() - start) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    // Every server process of the database now: the pool may have opened connections during the run (counted from 0).
    const pids1 = storage.options.kind === 'postgres' ? await backendPids(storage.options.url) : [];
    const db1 = pids1.map((pid) => [processCpuMs(pid), pids.includes(pid) ? db0.get(pid) : 0] as const);
    if (threads0 !== undefined) {
      const per = [...threadCpuMs()].map(([tid, [name, ms]]) => `${name}(${tid}) ${(((ms - (threads0.get(tid)?.[1] ?? 0)) * 1e3) / entries).toFixed(1)}`);
      console.log(`CPU µs per entry by thread: ${per.join(', ')}`);
    }
    if (profiler !== undefined && PROFILE !== undefined) await stopProfiler(profiler, `${PROFILE}-${storage.name}.cpuprofile`);
    let dbUs: number | undefined = storage.options.kind === 'postgres' ? 0 : undefined;
    db1.forEach(([v, v0]) => {
      dbUs = dbUs === undefined || v === undefined || v0 === undefined ? undefined : dbUs + ((v - v0) * 1e3) / entries;
    });
    return { entries, rate: entries / s, nodeUs: (cpu.user + cpu.system) / entries, dbUs };
  } finally {
    await ledger.close();
  }
}

/** Fills `frames` with `total` synthetic rows (one pack of `perPack`, the rest spread) and times one 100 k-row history page. */
async function historyAt(total: number, perPack: number): Promise<{ ms: number; rows: number }> {
  const storage = await postgresStorage(2);
  const f = await TestFactory.create('Bench');
  const ledger = await Ledger.open({ storage: storage.options, witness: testWitness(), trust: await f.trust(), clock: () => T0, verifyThreads: 0 });
  try {
    const gw = new TestGateway('history', 6);
    const rec = await ledger.enrollGateway(gw.vkey);
    const url = storage.options.kind === 'postgres' ? storage.options.url : '';
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      // Rows as uploads would have stored them; the target pack's frames are interleaved with the others'.
      await c.query(
        `INSERT INTO frames (serial, counter, frame_sha256, gateway_id, idx, received_at, source, cert_sha256, device_time,
           soc, soh, voltage, current, cell_min, cell_max, temp_min, temp_max, cycles, alarms)
         SELECT CASE WHEN n % $3 = 0 THEN 'PK-TARGET' ELSE 'PK-' || lpad((n % 997)::text, 6, '0') END,
                CASE WHEN n % $3 = 0 THEN n / $3 ELSE n END,
                sha256(int8send(n)), $1, n, $4::bigint + n, 'serial:/dev/ttyUSB0', sha256(''::bytea), $4::bigint + n,
                800, 960, 52000, -1000, 3280, 3290, 210, 250, 300, 0
         FROM generate_series(0, $2 - 1) AS n`,
        [rec.id, total, Math.floor(total / perPack), T0],
      );
      // As autovacuum leaves a live table: statistics and the visibility map (index-only scans).
      await c.query('VACUUM ANALYZE frames');
    } finally {
      await c.end();
    }
    await ledger.history('PK-TARGET', { limit: 10 }); // warm the pool and plan
    const times: number[] = [];
    let rows = 0;
    for (let round = 0; round < 5; round++) {
      const start = process.hrtime.bigint();
      rows = (await ledger.history('PK-TARGET', { limit: 100_000 })).rows.length;
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    return { ms: times.sort((a, b) => a - b)[2] ?? 0, rows };
  } finally {
    await ledger.close();
    await storage.drop();
  }
}

export async function ledgerBenchmarks(_sectionBaseline: number): Promise<Result[]> {
  const cores = availableParallelism();
  // The backlog (1 M entries) on PostgreSQL, the storage a ledger serving many gateways
  // runs on; the embedded store (PGlite, in the ledger's own thread) on its first 100 k unless BENCH_LARGE.
  const b = await backlog(1_000_000);
  const out: Result[] = [];
  const runs: [() => Promise<TestStorage>, number][] = [
    [() => postgresStorage(4), b.bodies.length],
    [() => Promise.resolve(embeddedStorage()), LARGE ? b.bodies.length : Math.ceil(100_000 / BATCH)],
  ];
  for (const [make, uploads] of runs) {
    const storage = await make();
    try {
      // Raw verify measured just before and just after the catch-up (the host's speed drifts over
      // the minutes it takes; the section's baseline is from before the backlog was built).
      const [rate0, us0] = [baselineVerifyRate(), verifyCpuUs()];
      const c = await catchUp(storage, b, uploads);
      const [rate1, us1] = [baselineVerifyRate(), verifyCpuUs()];
      const baseline = (rate0 + rate1) / 2;
      const vUs = (us0 + us1) / 2;
      // Ceiling: a ledger spending one raw verify per entry and nothing else, beside the PostgreSQL
      // server on the same cores (what the wall ratio could reach with every core busy).
      const cpu =
        c.dbUs === undefined
          ? `${(vUs / c.nodeUs).toFixed(2)} (database in-process)`
          : `${(vUs / (c.nodeUs + c.dbUs)).toFixed(2)} (µs per entry: ledger ${c.nodeUs.toFixed(0)}, PostgreSQL ${c.dbUs.toFixed(0)}; verify ${vUs.toFixed(0)}); ` +
            `ceiling on these cores with PostgreSQL beside the ledger: ${(vUs / (vUs + c.dbUs)).toFixed(2)}`;
      out.push({
        name: `ledger catch-up, ${c.entries.toLocaleString('en')} entries, ${storage.name}`,
        opsPerSec: c.rate,
        note: `wall: ${(c.rate / (baseline * cores)).toFixed(2)} of raw verify × ${cores} cores (raw ${Math.round(rate0)}/s before, ${Math.round(rate1)}/s after); CPU: ${cpu}`,
        target: '≥ 0.8 of raw verify × cores',
      });
    } finally {
      await storage.drop();
    }
  }
  const total = LARGE ? 10_000_000 : 1_000_000;
  const h = await historyAt(total, 100_000);
  out.push({ name: `ledger history, ${h.rows.toLocaleString('en')} rows of one pack among ${total.toLocaleString('en')} (PostgreSQL)`, opsPerSec: 1000 / h.ms, note: `${h.ms.toFixed(0)} ms (median of 5)`, target: '< 1 s' });
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const baseline = baselineVerifyRate();
  console.log(formatTable(baseline, await ledgerBenchmarks(baseline)));
}
