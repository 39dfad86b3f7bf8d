/**
 * The ledger side of the hostile-input suite (issue 8 item 3; docs/security.md "Ledger"): a real
 * Ledger (embedded PGlite store in a temp directory) that has accepted a gateway's first checkpoint,
 * then attacked through its two entry points, authenticateGateway and upload. Impersonation: a
 * request signed by an unenrolled key, by another key under the enrolled origin, a replayed nonce,
 * a stale timestamp, a body other than the one signed, garbage Authorization headers. Fuzzed upload
 * bodies (damaged CBOR of a valid upload, hostile items, random bytes). A gateway fork (checkpoints
 * that do not extend the accepted one). Tampered uploads (a held leaf changed; a new leaf changed
 * under a checkpoint of the true tree). Each must be refused with its code, nothing may throw
 * anything but a LedgerError, and the accepted state (size, root, cosigned checkpoint) and the
 * pack's history must be exactly what they were.
 */
import { randomBytes } from 'node:crypto';
import { toHex, type SyncState } from '../../protocol/index.js';
import { isLedgerError } from '../../ledger/errors.js';
import { Ledger } from '../../ledger/ledger.js';
import { embeddedStorage, send, T0, TestFactory, TestGateway, testWitness, type TestPack } from '../../ledger/ledger-testkit.js';
import type { GatewayRecord } from '../../ledger/types.js';
import { hostileItem, mutateCbor } from './cbor-hostile.js';
import { Rng } from './prng.js';

export interface LedgerCase {
  readonly name: string;
  readonly expected: readonly string[];
  readonly got: string;
  readonly ok: boolean;
}

export interface LedgerFigures {
  readonly cases: readonly LedgerCase[];
  /** Fuzzed upload bodies and Authorization headers: results by code. */
  readonly fuzz: { readonly bodies: number; readonly headers: number; readonly byCode: Readonly<Record<string, number>> };
  /** Exceptions other than LedgerError (a crash in the HTTP layer: a 500). */
  readonly crashes: number;
  readonly crashDetails: readonly string[];
  readonly stateUnchanged: boolean;
  readonly historyUnchanged: boolean;
  readonly alerts: number;
  readonly evidence: number;
}

const PATH = '/v1/gateway/upload';

/** The outcome of `p` as a code: 'ok', the LedgerError code, or CRASH:<message> for anything else. */
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (isLedgerError(e)) return e.code;
    return `CRASH: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
  }
}

const stateKey = (s: SyncState): string => `${s.size} ${toHex(s.rootHash)} ${s.checkpoint ?? ''}`;

export async function runLedgerHostile(o: { readonly seed: number; readonly bodies: number; readonly headers: number }): Promise<LedgerFigures> {
  const rng = new Rng(o.seed);
  const storage = embeddedStorage();
  let alerts = 0;
  const factory = await TestFactory.create('Hostile Ledger');
  const pack: TestPack = await factory.pack('PK-LEDGER-0001', 'Ed25519');
  const ledger = await Ledger.open({ storage: storage.options, witness: testWitness(), trust: await factory.trust(), clock: () => T0, verifyThreads: 0, onAlert: () => { alerts++; } });
  try {
    const gw = new TestGateway('hostile', 11);
    const rec: GatewayRecord = await ledger.enrollGateway(gw.vkey);
    for (let i = 0; i < 10; i++) gw.append(pack, pack.frame(i));
    await send(ledger, gw, gw.request(0, 6, [pack], { proofFrom: 0 }));
    const before = await ledger.state(rec);
    const historyOf = async (): Promise<string> => JSON.stringify((await ledger.history(pack.serial, { limit: 1000 })).rows.map((r) => [r.counter, r.index]));
    const historyBefore = await historyOf();

    const cases: LedgerCase[] = [];
    const crashDetails: string[] = [];
    const check = async (name: string, expected: readonly string[], p: Promise<unknown>): Promise<void> => {
      const got = await outcome(p);
      if (got.startsWith('CRASH') && crashDetails.length < 20) crashDetails.push(`${name}: ${got}`);
      cases.push({ name, expected, got, ok: expected.includes(got) });
    };
    const body = gw.body(gw.request(0, 6, [pack]));
    const auth = (who: TestGateway, ts = T0, nonce?: Uint8Array, signedBody = body): string => who.authorize('POST', PATH, signedBody, ts, nonce);
    const authenticate = (header: string | undefined, b = body): Promise<GatewayRecord> => ledger.authenticateGateway(header, 'POST', PATH, b);

    // Gateway impersonation.
    await check('request signed by an unenrolled gateway key', ['GATEWAY_UNKNOWN'], authenticate(auth(new TestGateway('rogue', 99))));
    await check('request signed by another key under the enrolled origin', ['AUTH_FAILED'], authenticate(auth(new TestGateway('hostile', 12))));
    const nonce = new Uint8Array(randomBytes(16));
    await check('first use of a nonce (genuine)', ['ok'], authenticate(auth(gw, T0, nonce)));
    await check('replayed nonce', ['AUTH_REPLAY'], authenticate(auth(gw, T0, nonce)));
    await check('stale timestamp (10 min old)', ['AUTH_FAILED'], authenticate(auth(gw, T0 - 600_000)));
    await check('timestamp 10 min in the future', ['AUTH_FAILED'], authenticate(auth(gw, T0 + 600_000)));
    await check('body other than the one signed', ['AUTH_FAILED'], authenticate(auth(gw), gw.body(gw.request(0, 5, [pack]))));
    await check('no Authorization header', ['AUTH_FAILED'], authenticate(undefined));

    // Gateway fork: the same key over a log that keeps 3 leaves and then differs.
    const liar = new TestGateway('hostile', 11);
    for (let i = 0; i < 10; i++) {
      if (i < 3) liar.appendLeaf(gw.leaves[i] as Uint8Array);
      else liar.append(pack, pack.frame(100 + i));
    }
    await check('fork: same size, another root', ['CHECKPOINT_CONFLICT'], send(ledger, liar, liar.request(6, 6, [], { size: 6, proofFrom: 6 })));
    await check('fork: rewritten history uploaded over held leaves', ['ENTRY_CONFLICT'], send(ledger, liar, liar.request(3, 8, [pack], { size: 8, proofFrom: 6 })));

    // Tampered uploads.
    const flip = (leaf: Uint8Array): Uint8Array => {
      const out = Uint8Array.from(leaf);
      const i = out.length - 10;
      out[i] = (out[i] ?? 0) ^ 1;
      return out;
    };
    const held = gw.request(0, 6, [pack]);
    await check('tampered held leaf (bytes changed)', ['ENTRY_CONFLICT'], send(ledger, gw, { ...held, entries: held.entries.map((e, i) => (i === 4 ? flip(e) : e)) }));
    const next = gw.request(6, 10, [pack], { size: 10, proofFrom: 6 });
    await check('tampered new leaf under a checkpoint of the true tree', ['ENTRIES_MISMATCH'], send(ledger, gw, { ...next, entries: next.entries.map((e, i) => (i === 1 ? flip(e) : e)) }));
    // After the tampered leaves were staged, the liar's own leaves 6..9 conflict with them first.
    await check('fork: a larger checkpoint of the forked log, proven from the accepted size', ['CHECKPOINT_CONFLICT', 'ENTRY_CONFLICT'], send(ledger, liar, liar.request(6, 10, [pack], { size: 10, proofFrom: 6 })));

    // Fuzzed bodies (as the enrolled gateway, authenticated) and Authorization headers.
    const byCode: Record<string, number> = {};
    let crashes = 0;
    const count = (code: string, what: string): void => {
      const k = code.startsWith('CRASH') ? 'CRASH' : code;
      byCode[k] = (byCode[k] ?? 0) + 1;
      if (k === 'CRASH') {
        crashes++;
        if (crashDetails.length < 20) crashDetails.push(`${what}: ${code}`);
      }
    };
    for (let i = 0; i < o.bodies; i++) {
      const b = rng.chance(0.8) ? mutateCbor(rng, body, 20_000, 4).bytes : rng.chance(0.5) ? hostileItem(rng, 4096) : rng.bytes(rng.range(0, 2000));
      count(await outcome(ledger.upload(rec, b)), `body ${toHex(b.subarray(0, 32))}`);
    }
    const good = auth(gw);
    for (let i = 0; i < o.headers; i++) {
      const h = good.split('');
      for (let k = rng.range(1, 4); k > 0; k--) {
        const at = rng.int(h.length);
        const op = rng.int(3);
        if (op === 0) h[at] = String.fromCharCode(rng.range(0x20, 0x7e));
        else if (op === 1) h.splice(at, 1);
        else h.splice(at, 0, String.fromCharCode(rng.range(0, 0x2ff)));
      }
      const header = rng.chance(0.1) ? 'x'.repeat(rng.range(1000, 5000)) : h.join('');
      const code = await outcome(authenticate(header));
      count(code === 'ok' ? 'ok' : code, `header ${header.slice(0, 80)}`);
    }
    crashes += cases.filter((c) => c.got.startsWith('CRASH')).length;

    const after = await ledger.state(rec);
    return {
      cases,
      fuzz: { bodies: o.bodies, headers: o.headers, byCode },
      crashes,
      crashDetails,
      stateUnchanged: stateKey(after) === stateKey(before),
      historyUnchanged: (await historyOf()) === historyBefore,
      alerts,
      evidence: (await ledger.evidence()).length,
    };
  } finally {
    await ledger.close();
    await storage.drop();
  }
}
