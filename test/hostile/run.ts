/**
 * The hostile-input suite's runner (issue 8 item 3; docs/security.md): N hostile inputs from a
 * seeded PRNG through the REAL path — MemoryTransport (LineInput: protocol LineDecoder → parseLine
 * → decodeMessage, the port's caps) and the gateway's BLE input (ChunkInput: protocol Reassembler)
 * → IngestPipeline (sessions against a real TrustStore with a CRL, COSE verification on worker
 * threads, dedupe) → LogStore on a temp directory (fsync'd group commits) — with genuine frames of
 * four genuine packs (serial and BLE, Ed25519 and ES256) interleaved and the security cases woven in.
 *
 * Afterwards it proves: nothing crashed (no handler error, no VERIFY_INTERNAL, no worker failure,
 * no uncaught exception, no drain that stalled), no forgery was accepted (every stored leaf names a
 * genuine pack's certificate, verifies with its key, carries its serial and is byte-for-byte a frame
 * the suite made as genuine), every genuine frame sent is stored exactly once, every security case
 * got its code, memory stayed bounded, `gateway verify` (verifyLog) is clean, and a tampered copy
 * of the log is pinpointed by index. Returns the figures; asserting on them is the caller's job.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  createNoteSigner,
  decodeFrame,
  decodeLeaf,
  gatewayOrigin,
  okResponse,
  toHex,
  verifierOf,
  verifySign1,
} from '../../protocol/index.js';
import { CertStore, IngestPipeline, logPort, LogStore, MemoryTransport, verifyLog, type MemoryDevice } from '../../gateway/index.js';
import { TestFactory } from '../../gateway/ingest/ingest-testkit.js';
import { SafeEvents } from '../../gateway/transport/endpoint.js';
import { GenuineDevice } from './devices.js';
import { bleInput, serialInput, type Target } from './inputs.js';
import { BleLink, serialLink, type Link } from './links.js';
import { Genuine, HostilePack, payloadOf } from './packs.js';
import { Rng } from './prng.js';
import { runCase, SECURITY_CASES, type CaseLink, type SecurityContext } from './security.js';
import { tamperChecks, type TamperResult } from './tamper.js';

export interface HostileOptions {
  /** Hostile inputs to feed (a security case counts as one). */
  readonly count: number;
  readonly seed: number;
  /** Verification worker threads (default 2). */
  readonly workers?: number;
  /** A genuine frame every N inputs (default 20). */
  readonly genuineEvery?: number;
  /** A security case every N inputs (default 200). */
  readonly securityEvery?: number;
  /** Progress lines (every 50 k inputs). */
  readonly progress?: (line: string) => void;
}

export interface Memory {
  readonly rssMiB: number;
  readonly heapUsedMiB: number;
}

export interface HostileFigures {
  readonly seed: number;
  readonly inputs: number;
  readonly byKind: Readonly<Record<string, number>>;
  readonly seconds: number;
  readonly inputsPerSecond: number;
  readonly crashes: { readonly handlerErrors: number; readonly internal: number; readonly workerFailures: number; readonly uncaught: number; readonly stalls: number; readonly total: number };
  readonly forgeriesAccepted: number;
  readonly forgeryDetails: readonly string[];
  readonly genuine: { readonly sent: number; readonly stored: number; readonly missing: number; readonly unacked: number; readonly storedTwice: number; readonly resendRounds: number };
  /** The pipeline's quarantine by code (decoder rejects reach it through the transports' reject events). */
  readonly rejects: Readonly<Record<string, number>>;
  readonly rejectsTotal: number;
  /** Per-endpoint transport counters summed (counts every RATE_LIMITED drop, which the pipeline sees once a second). */
  readonly transportRejects: Readonly<Record<string, number>>;
  readonly duplicates: number;
  readonly security: { readonly runs: Readonly<Record<string, number>>; readonly expected: Readonly<Record<string, number>>; readonly shortfalls: readonly string[]; readonly failures: readonly string[] };
  readonly memory: { readonly before: Memory; readonly after: Memory; readonly peakRssMiB: number };
  readonly log: { readonly size: number; readonly verifyOk: boolean; readonly verifyProblems: readonly string[]; readonly tamper: readonly TamperResult[] };
}

const HIGH_RATE = { messagesPerSecond: 1e9, bytesPerSecond: 1e12 };
const MiB = 1024 * 1024;

/** A full GC when the runtime allows it (flag set at runtime; `--expose-gc` not needed). */
function collect(): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (() => void) | undefined;
  if (typeof gc === 'function') {
    gc();
    gc();
  }
}

function memory(): Memory {
  collect();
  const m = process.memoryUsage();
  return { rssMiB: Math.round((m.rss / MiB) * 10) / 10, heapUsedMiB: Math.round((m.heapUsed / MiB) * 10) / 10 };
}

const immediate = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runHostile(o: HostileOptions): Promise<HostileFigures> {
  const rng = new Rng(o.seed);
  const genuineEvery = o.genuineEvery ?? 20;
  const securityEvery = o.securityEvery ?? 200;
  const dir = mkdtempSync(join(tmpdir(), 'packchain-hostile-'));
  let uncaught = 0;
  const onUncaught = (): void => {
    uncaught++;
  };
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  const cleanups: (() => Promise<void> | void)[] = [];
  try {
    // Trust: a factory whose CRL revokes one pack; a foreign factory nobody trusts.
    const factory = await TestFactory.create('Hostile');
    const foreignFactory = await TestFactory.create('Foreign');
    const genuine = new Genuine();
    const [pa, pb, pc, pd] = await Promise.all([
      HostilePack.create(factory, 'PK-HOSTILE-A', 'Ed25519', genuine),
      HostilePack.create(factory, 'PK-HOSTILE-B', 'ES256', genuine),
      HostilePack.create(factory, 'PK-HOSTILE-C', 'Ed25519', genuine),
      HostilePack.create(factory, 'PK-HOSTILE-D', 'ES256', genuine),
    ]);
    const others = [await HostilePack.create(factory, 'PK-HOSTILE-OTHER-E', 'Ed25519'), await HostilePack.create(factory, 'PK-HOSTILE-OTHER-P', 'ES256')];
    const revoked = await HostilePack.create(factory, 'PK-HOSTILE-REVOKED', 'Ed25519');
    const foreign = await HostilePack.create(foreignFactory, 'PK-HOSTILE-FOREIGN', 'Ed25519');
    const trust = await factory.trust([revoked.certSerialHex]);

    const origin = gatewayOrigin('hostile');
    const signer = createNoteSigner(origin, new Uint8Array(32).fill(7));
    const logDir = join(dir, 'log');
    const certsDir = join(dir, 'certs');
    const store = await LogStore.open({ dir: logDir, origin });
    cleanups.push(() => store.close());
    const certs = CertStore.open(certsDir, true);
    const pipeline = await IngestPipeline.open({
      log: logPort(store),
      trust,
      stateDir: dir,
      verify: { workers: o.workers ?? 2 },
      chainVerified: (chain) => {
        certs.remember(chain);
      },
    });
    cleanups.push(() => pipeline.close());
    const fuzzT = new MemoryTransport({ rate: HIGH_RATE });
    const cappedT = new MemoryTransport({ maxLineBytes: 1024 }); // the default rate caps
    await fuzzT.start(pipeline.events);
    await cappedT.start(pipeline.events);
    cleanups.push(() => fuzzT.stop(), () => cappedT.stop());
    const bleEvents = new SafeEvents(pipeline.events);

    /** Memory devices keep every message the gateway sent them; the suite empties those lists as it goes. */
    const memDevices: MemoryDevice[] = [];
    const memDevice = (t: MemoryTransport, name: string): MemoryDevice => {
      const d = t.device(name);
      memDevices.push(d);
      return d;
    };
    const serialDev = (name: string, pack: HostilePack): GenuineDevice => new GenuineDevice(pack, serialLink(memDevice(fuzzT, name)));
    const bleA = new BleLink('C0:DE:00:00:00:0C', bleEvents, HIGH_RATE);
    const bleB = new BleLink('C0:DE:00:00:00:0D', bleEvents, HIGH_RATE);
    const devices = [serialDev('hostile-a', pa), serialDev('hostile-b', pb), new GenuineDevice(pc, bleA), new GenuineDevice(pd, bleB)];
    const bleLinks: BleLink[] = [bleA, bleB];
    cleanups.push(() => {
      for (const l of bleLinks) l.unplug();
    });
    for (const d of devices) d.link.plug();
    // Channels without a genuine device: one that never says hello, one on the capped port.
    const anon = serialLink(memDevice(fuzzT, 'hostile-anon'));
    anon.plug();
    const capped = serialLink(memDevice(cappedT, 'hostile-capped'));
    capped.plug();

    const status = (): ReturnType<IngestPipeline['status']> => pipeline.status();
    for (let i = 0; i < 500 && status().sessions.filter((s) => s.state === 'verified').length < devices.length; i++) await sleep(10);
    if (status().sessions.filter((s) => s.state === 'verified').length < devices.length) throw new Error('hostile: the genuine devices did not get verified sessions');

    // Security cases' own links.
    const caseLinks = new Map<string, CaseLink>();
    const caseLink = (name: string): CaseLink => {
      let c = caseLinks.get(name);
      if (c === undefined) {
        const d = memDevice(fuzzT, `case-${name}`);
        const link = serialLink(d);
        const made: CaseLink = { link, hello: undefined };
        d.onReceive((m) => {
          if (m.type === 'request' && m.op === 'hello' && made.hello !== undefined) {
            const { type: _t, ...hello } = made.hello;
            link.send(okResponse(m.id, { op: 'hello', hello }));
          }
        });
        c = made;
        caseLinks.set(name, c);
      }
      return c;
    };

    let stalls = 0;
    let peakRss = 0;
    /** Lets deliveries, verification and appends catch up; a pipeline that stops draining is a stall (a hang). */
    const settle = async (maxInFlight = 0): Promise<void> => {
      await immediate();
      let last = -1;
      let since = Date.now();
      for (;;) {
        const n = status().inFlight;
        if (n <= maxInFlight) return;
        if (n !== last) {
          last = n;
          since = Date.now();
        } else if (Date.now() - since > 60_000) {
          stalls++;
          throw new Error(`hostile: the pipeline stopped draining with ${n} frames in flight`);
        }
        await sleep(1);
      }
    };

    const expected: Record<string, number> = {};
    const failures: string[] = [];
    const runs: Record<string, number> = {};
    let expectedDuplicates = 0;
    const ctx: SecurityContext = {
      rng,
      devices,
      others,
      foreign,
      revoked,
      caseLink,
      settle: () => settle(0),
      session: (id) => {
        const s = status().sessions.find((x) => x.channel === id);
        return s === undefined ? undefined : { state: s.state, code: s.code };
      },
      rejects: (code) => pipeline.rejects(code),
      recent: () =>
        status()
          .quarantine.recent.slice(-4)
          .map((r) => `${r.code} ${r.channel} ${r.detail}`)
          .join(' | '),
      expect: (code, n) => {
        expected[code] = (expected[code] ?? 0) + n;
      },
      failure: (t) => {
        if (failures.length < 50) failures.push(t);
      },
    };

    // The base of CBOR mutations: a frame validly signed by the pack but never sent as genuine, so a
    // mutation the decoders let through would be stored as bytes the suite never made (a forgery).
    const bases = new Map<GenuineDevice, Uint8Array>(devices.map((d) => [d, d.pack.signPayload(payloadOf(d.pack.serial, 1_500_000_000))]));
    const carriers = new Map<GenuineDevice, Uint8Array>(devices.map((d) => [d, d.pack.forged(1_500_000_001)]));
    const targetOf = (dev: GenuineDevice, link: Link): Target => ({ dev, link, base: bases.get(dev) ?? new Uint8Array(0), carrier: carriers.get(dev) ?? new Uint8Array(0) });
    const byKind: Record<string, number> = {};
    const count = (k: string): void => {
      byKind[k] = (byKind[k] ?? 0) + 1;
    };

    await settle();
    const before = memory();
    const t0 = performance.now();
    let caseAt = 0;
    for (let i = 0; i < o.count; i++) {
      if (i % genuineEvery === 0) rng.pick(devices).sendNew(rng);
      if (i % securityEvery === securityEvery - 1) {
        const name = SECURITY_CASES[caseAt++ % SECURITY_CASES.length] ?? 'forged-frame';
        await settle(0);
        expectedDuplicates += await runCase(ctx, name);
        runs[name] = (runs[name] ?? 0) + 1;
        count(`security:${name}`);
        continue;
      }
      const where = rng.int(100);
      const dev = rng.pick(devices);
      if (where < 80 && dev.link instanceof BleLink) {
        const { kind, helloTouched } = bleInput(rng, targetOf(dev, dev.link), dev.link);
        count(kind);
        if (helloTouched) dev.hello();
      } else if (where < 80) {
        const { kind, helloTouched } = serialInput(rng, targetOf(dev, dev.link));
        count(kind);
        if (helloTouched) dev.hello();
      } else {
        const link = where < 90 ? anon : capped;
        const { kind } = serialInput(rng, targetOf(dev, link));
        count(`${link === anon ? 'no-session' : 'capped-port'}:${kind}`);
      }
      if (i % 64 === 63) await settle(256);
      if (i % 5000 === 0) {
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
        for (const d of memDevices) d.received.length = 0;
      }
      if (o.progress && i > 0 && i % 50_000 === 0) {
        const s = (performance.now() - t0) / 1000;
        o.progress(`hostile: ${i} inputs in ${s.toFixed(1)} s (${Math.round(i / s)}/s), log ${store.size}, rejects ${status().quarantine.total}`);
      }
    }
    await settle(0);
    const seconds = (performance.now() - t0) / 1000;

    // Every genuine device reboots and resends what is unacknowledged, until all is acked.
    let resendRounds = 0;
    while (devices.some((d) => d.unacked.size > 0) && resendRounds < 50) {
      resendRounds++;
      for (const d of devices) {
        if (d.link.kind === 'serial') d.link.raw([Uint8Array.of(0x0a)]);
        d.hello();
        d.resend();
      }
      await settle(0);
      for (let k = 0; k < 20 && devices.some((d) => d.unacked.size > 0); k++) await sleep(5);
    }
    const after = memory();
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    const st = status();
    const handlerErrors = fuzzT.status().handlerErrors + cappedT.status().handlerErrors + bleEvents.errors;
    const transportRejects: Record<string, number> = {};
    for (const t of [fuzzT.status().rejects, cappedT.status().rejects, ...bleLinks.map((l) => l.counters.rejects)]) {
      for (const [k, v] of Object.entries(t)) transportRejects[k] = (transportRejects[k] ?? 0) + v;
    }
    const shortfalls: string[] = [];
    for (const [code, n] of Object.entries(expected)) {
      if (pipeline.rejects(code) < n) shortfalls.push(`${code}: expected at least ${n}, counted ${pipeline.rejects(code)}`);
    }
    if (st.duplicates < expectedDuplicates) shortfalls.push(`duplicates: expected at least ${expectedDuplicates}, counted ${st.duplicates}`);

    await fuzzT.stop();
    await cappedT.stop();
    for (const l of bleLinks) l.unplug();
    await pipeline.close();
    await store.checkpoint(signer);

    // The log, read back: every leaf must be a genuine frame, each genuine frame sent stored once.
    const keys = new Map(devices.map((d) => [toHex(d.pack.certSha256), d.pack]));
    const seen = new Map<string, number>();
    const forgeryDetails: string[] = [];
    let forgeries = 0;
    for await (const e of store.entries(0, store.size)) {
      let why: string | undefined;
      try {
        const leaf = decodeLeaf(e.data);
        const pack = keys.get(toHex(leaf.certSha256));
        if (pack === undefined) why = 'names a certificate of no genuine pack';
        else {
          const { payload } = verifySign1(leaf.frame, { publicKey: pack.publicKey, kid: pack.kid });
          const f = decodeFrame(payload);
          const key = Genuine.key(leaf.frame);
          if (f.serial !== pack.serial) why = `frame serial ${f.serial} is not its certificate's ${pack.serial}`;
          else if (!genuine.frames.has(key)) why = `${f.serial} #${f.counter}: bytes the suite never made as genuine`;
          else seen.set(key, (seen.get(key) ?? 0) + 1);
        }
      } catch (err) {
        why = `does not verify: ${(err as Error).message}`;
      }
      if (why !== undefined) {
        forgeries++;
        if (forgeryDetails.length < 20) forgeryDetails.push(`entry ${e.index}: ${why} (leaf ${toHex(e.data)})`);
      }
    }
    const sent = devices.reduce((n, d) => n + d.sent, 0);
    const twice = [...seen.values()].filter((n) => n > 1).length;
    const unacked = devices.reduce((n, d) => n + d.unacked.size, 0);
    const storedGenuine = seen.size;

    const verifier = verifierOf(signer);
    const report = await verifyLog({ store, certs: CertStore.open(certsDir, false), verifier, trust });
    await store.close();
    cleanups.length = 0;
    const tamper = store.size > 0 ? await tamperChecks(logDir, certsDir, verifier, dir, Math.floor(store.size / 2)) : [];

    const q = st.quarantine.byCode;
    const internal = (q.VERIFY_INTERNAL ?? 0) + (q.OTHER ?? 0);
    const workerFailures = st.verify.workerFailures;
    return {
      seed: o.seed,
      inputs: o.count,
      byKind,
      seconds: Math.round(seconds * 10) / 10,
      inputsPerSecond: Math.round(o.count / seconds),
      crashes: { handlerErrors, internal, workerFailures, uncaught, stalls, total: handlerErrors + internal + workerFailures + uncaught + stalls },
      forgeriesAccepted: forgeries,
      forgeryDetails,
      genuine: { sent, stored: storedGenuine, missing: sent - storedGenuine, unacked, storedTwice: twice, resendRounds },
      rejects: q,
      rejectsTotal: st.quarantine.total,
      transportRejects,
      duplicates: st.duplicates,
      security: { runs, expected, shortfalls, failures },
      memory: { before, after, peakRssMiB: Math.round((peakRss / MiB) * 10) / 10 },
      log: { size: store.size, verifyOk: report.ok, verifyProblems: report.problems.slice(0, 10).map((p) => `${p.index ?? '-'} ${p.code}: ${p.what}`), tamper },
    };
  } finally {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        // best effort: the run already failed
      }
    }
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
    rmSync(dir, { recursive: true, force: true });
  }
}
