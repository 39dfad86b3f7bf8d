/**
 * The security cases of the hostile-input suite (issue 8 item 3, docs/security.md): attacks that
 * are well-formed on the wire and must be refused by the pipeline's judgement, not its parsers.
 * On a genuine device's verified link: a forged frame (another key under the pack's kid), a counter
 * rollback (the pack's own key, a counter already stored, other bytes), a replay of an accepted frame
 * (a duplicate: acked again, stored once), a frame over another pack's serial, a frame of another
 * certified pack, the ES256 high-S twin of an accepted frame. Each on a link of its own, hello
 * first: a device with no certificate copying a genuine pack's public hello, a chain to a foreign
 * root, a revoked pack, a garbage chain, a hello whose key or serial is not its certificate's, an
 * unprovisioned device, a device that never says hello. Every case names the code it must get.
 */
import { payloadOf, HostilePack } from './packs.js';
import type { GenuineDevice } from './devices.js';
import type { Link } from './links.js';
import type { Rng } from './prng.js';
import type { HelloMessage } from '../../protocol/index.js';

/** A link reserved for one case, plugged for each run of it and answering `Q hello` with `hello`. */
export interface CaseLink {
  readonly link: Link;
  hello: HelloMessage | undefined;
}

export interface SecurityContext {
  readonly rng: Rng;
  /** Genuine devices on verified links. */
  readonly devices: readonly GenuineDevice[];
  /** Certified packs that are never connected, one per algorithm. */
  readonly others: readonly HostilePack[];
  readonly foreign: HostilePack;
  readonly revoked: HostilePack;
  /** The dedicated link of a case (made on first use). */
  caseLink(name: string): CaseLink;
  /** Lets queued deliveries, verification and appends run. */
  settle(): Promise<void>;
  /** The session state and code of channel `id` (pipeline status). */
  session(id: string): { state: string; code: string | undefined } | undefined;
  /** Rejects counted so far with `code`. */
  rejects(code: string): number;
  /** The newest reject samples, for a failure's detail. */
  recent(): string;
  /** The pipeline must count at least `n` more rejects with `code` by the end. */
  expect(code: string, n: number): void;
  /** A case that got another verdict than its own. */
  failure(text: string): void;
}

export const SECURITY_CASES = [
  'forged-frame',
  'counter-rollback',
  'replay-accepted',
  'serial-not-certificate',
  'other-pack-frame',
  'high-s-twin',
  'forged-device',
  'foreign-root',
  'revoked-pack',
  'garbage-chain',
  'hello-key-mismatch',
  'hello-serial-mismatch',
  'unprovisioned',
  'no-hello',
] as const;
export type SecurityCase = (typeof SECURITY_CASES)[number];

const frame = (cose: Uint8Array): { type: 'frame'; cose: Uint8Array } => ({ type: 'frame', cose });

/** Sends a frame on `dev`'s link, after an LF on serial: garbage left without its LF would otherwise swallow the line (an attacker resyncs too). */
function sendResynced(dev: GenuineDevice, cose: Uint8Array): void {
  if (dev.link.kind === 'serial') dev.link.raw([Uint8Array.of(0x0a)]);
  dev.link.send(frame(cose));
}

/** Sends `cose` on `dev`'s verified link and checks, once it is judged, that `code` was counted for it. */
async function refused(ctx: SecurityContext, name: string, dev: GenuineDevice, cose: Uint8Array, code: string): Promise<void> {
  const before = ctx.rejects(code);
  sendResynced(dev, cose);
  ctx.expect(code, 1);
  await ctx.settle();
  if (ctx.rejects(code) <= before) ctx.failure(`${name} on ${dev.link.id}: expected ${code}; recent rejects: ${ctx.recent()}`);
}

/** Runs `name` once. Returns the number of duplicates it expects to cause (replays). */
export async function runCase(ctx: SecurityContext, name: SecurityCase): Promise<number> {
  const { rng } = ctx;
  const dev = rng.pick(ctx.devices);
  const { pack } = dev;
  const future = (): number => dev.next + rng.range(1, 50);
  // Another certified pack of the same algorithm (another algorithm would be COSE_ALG_MISMATCH first).
  const other = ctx.others.find((p) => p.alg === pack.alg) ?? pack;
  switch (name) {
    case 'forged-frame':
      await refused(ctx, name, dev, pack.forged(future()), 'COSE_SIGNATURE');
      return 0;
    case 'counter-rollback': {
      const a = dev.someAcked(rng);
      if (a === undefined) return 0;
      await refused(ctx, name, dev, pack.signPayload(payloadOf(pack.serial, a.counter, { soc: rng.range(0, 1000), alarms: 1 })), 'COUNTER_REPLAY');
      return 0;
    }
    case 'replay-accepted': {
      const a = dev.someAcked(rng);
      if (a === undefined) return 0;
      sendResynced(dev, a.cose);
      return 1;
    }
    case 'serial-not-certificate':
      await refused(ctx, name, dev, pack.signPayload(payloadOf(other.serial, future())), 'FRAME_SERIAL_MISMATCH');
      return 0;
    case 'other-pack-frame':
      await refused(ctx, name, dev, other.signPayload(payloadOf(other.serial, future())), 'COSE_KID_MISMATCH');
      return 0;
    case 'high-s-twin': {
      const es = ctx.devices.filter((d) => d.pack.alg === 'ES256' && d.acked.length > 0);
      if (es.length === 0) return 0;
      const d = rng.pick(es);
      const a = d.someAcked(rng);
      if (a === undefined) return 0;
      // The same signed payload under other (valid) signature bytes is the same frame: a duplicate,
      // acked again and never stored twice (gateway/ingest/dedupe.ts frameIdentity).
      sendResynced(d, HostilePack.highSTwin(a.cose));
      return 1;
    }
    default:
      await onOwnLink(ctx, name, dev);
      return 0;
  }
}

async function onOwnLink(ctx: SecurityContext, name: SecurityCase, dev: GenuineDevice): Promise<void> {
  const { rng } = ctx;
  const c = ctx.caseLink(name);
  const victim = dev.pack;
  let frames: Uint8Array[];
  let want: { state: string; code?: string };
  const n = rng.range(1, 3);
  const counters = Array.from({ length: n }, (_, i) => dev.next + 100 + i);
  switch (name) {
    case 'forged-device':
      // No certificate of its own: it replays the victim's public hello and signs with its own key.
      c.hello = victim.hello(dev.next, 0);
      frames = counters.map((k) => victim.forged(k));
      want = { state: 'verified' };
      ctx.expect('COSE_SIGNATURE', n);
      break;
    case 'foreign-root':
      c.hello = ctx.foreign.hello(0, 0);
      frames = counters.map((k) => ctx.foreign.signPayload(payloadOf(ctx.foreign.serial, k)));
      want = { state: 'refused', code: 'CHAIN_UNTRUSTED' };
      ctx.expect('CHAIN_UNTRUSTED', n + 1);
      break;
    case 'revoked-pack':
      c.hello = ctx.revoked.hello(0, 0);
      frames = counters.map((k) => ctx.revoked.signPayload(payloadOf(ctx.revoked.serial, k)));
      want = { state: 'refused', code: 'CERT_REVOKED' };
      ctx.expect('CERT_REVOKED', n + 1);
      break;
    case 'garbage-chain': {
      const junk = rng.chance(0.5) ? rng.bytes(rng.range(1, 2048)) : flipOne(rng, victim.chain[0] ?? new Uint8Array(1));
      c.hello = { ...victim.hello(0, 0), chain: rng.chance(0.5) ? [junk] : [junk, ...victim.chain.slice(1)] };
      frames = counters.map((k) => victim.forged(k));
      want = { state: 'refused' };
      break;
    }
    case 'hello-key-mismatch': {
      // The victim's certificate chain with another pack's key.
      const key = ctx.rng.pick(ctx.others);
      c.hello = { ...victim.hello(0, 0), alg: key.alg === 'Ed25519' ? -8 : -7, publicKey: key.raw };
      frames = counters.map((k) => victim.forged(k));
      want = { state: 'refused', code: 'HELLO_KEY_MISMATCH' };
      ctx.expect('HELLO_KEY_MISMATCH', n + 1);
      break;
    }
    case 'hello-serial-mismatch':
      c.hello = { ...victim.hello(0, 0), serial: 'PK-EVIL-0001' };
      frames = counters.map((k) => victim.forged(k));
      want = { state: 'refused', code: 'HELLO_SERIAL_MISMATCH' };
      ctx.expect('HELLO_SERIAL_MISMATCH', n + 1);
      break;
    case 'unprovisioned':
      c.hello = { type: 'hello', version: 1, serial: '', model: 'PC-BLANK', firmware: '1.4.2', alg: null, publicKey: null, chain: [], nextCounter: 0, unacked: 0 };
      frames = counters.map((k) => victim.forged(k));
      want = { state: 'unprovisioned' };
      ctx.expect('DEVICE_UNPROVISIONED', n + 1);
      break;
    default:
      c.hello = undefined;
      frames = counters.map((k) => victim.forged(k));
      want = { state: 'awaiting-hello' };
      ctx.expect('NO_SESSION', n);
  }
  c.link.plug();
  await ctx.settle();
  for (const f of frames) c.link.send(frame(f));
  await ctx.settle();
  const got = ctx.session(c.link.id);
  if (got?.state !== want.state || (want.code !== undefined && got.code !== want.code)) {
    ctx.failure(`${name}: expected session ${want.state}${want.code === undefined ? '' : ` ${want.code}`}, got ${got === undefined ? 'none' : `${got.state} ${got.code ?? ''}`}`);
  }
  c.link.unplug();
  await ctx.settle();
}

function flipOne(rng: Rng, b: Uint8Array): Uint8Array {
  const out = Uint8Array.from(b);
  const i = rng.int(out.length);
  out[i] = (out[i] ?? 0) ^ (1 << rng.int(8));
  return out;
}
