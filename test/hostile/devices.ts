/**
 * A genuine device on a hostile link: answers the gateway's `Q hello` with its hello, numbers its
 * frames with a monotonic counter, keeps every unacknowledged frame and resends them on demand, and
 * records the acks it gets (docs/protocol.md §4.3) — the behaviour that lets its frames survive the
 * garbage interleaved on the same link. The suite proves with it that the gateway keeps taking
 * genuine frames while under attack: every frame sent must end up in the log exactly once.
 */
import { encodeLine, okResponse, type Message } from '../../protocol/index.js';
import type { Link } from './links.js';
import type { HostilePack } from './packs.js';
import type { Rng } from './prng.js';

/** Acked frames kept for replays, rollbacks and high-S twins (bounded: a ring). */
const KEEP_ACKED = 64;

export class GenuineDevice {
  next = 0;
  readonly unacked = new Map<number, Uint8Array>();
  /** Some acked frames, counter and bytes (the newest KEEP_ACKED). */
  readonly acked: { counter: number; cose: Uint8Array }[] = [];
  ackedCount = 0;
  sent = 0;
  /** The id of the gateway's last `Q hello` (a hostile `R` can answer it). */
  helloId = -1;

  constructor(
    readonly pack: HostilePack,
    readonly link: Link,
  ) {
    link.onReceive((m) => {
      this.receive(m);
    });
  }

  private receive(m: Message): void {
    if (m.type === 'request' && m.op === 'hello') {
      this.helloId = m.id;
      const { type: _t, ...hello } = this.pack.hello(this.next, this.unacked.size);
      this.link.send(okResponse(m.id, { op: 'hello', hello }));
      return;
    }
    if (m.type !== 'ack') return;
    for (const [lo, hi] of m.ranges) {
      for (let c = lo; c <= hi && c < this.next; c++) {
        const cose = this.unacked.get(c);
        if (cose === undefined) continue;
        this.unacked.delete(c);
        this.ackedCount++;
        this.acked.push({ counter: c, cose });
        if (this.acked.length > KEEP_ACKED) this.acked.shift();
      }
    }
  }

  /** Sends the next genuine frame; on serial, sometimes split into several writes. */
  sendNew(rng: Rng): void {
    const c = this.next++;
    const cose = this.pack.frame(c);
    this.unacked.set(c, cose);
    this.sent++;
    if (this.link.kind !== 'serial' || !rng.chance(0.2)) {
      this.link.send({ type: 'frame', cose });
      return;
    }
    // The line in 2–6 pieces: the decoder's carry buffer must join them.
    const line = encodeLine({ type: 'frame', cose });
    const cuts = Array.from({ length: rng.range(1, 5) }, () => rng.int(line.length)).sort((a, b) => a - b);
    const parts: Uint8Array[] = [];
    let at = 0;
    for (const c of [...cuts, line.length]) {
      parts.push(line.subarray(at, c));
      at = c;
    }
    this.link.raw(parts.filter((p) => p.length > 0));
  }

  /** Resends every unacknowledged frame, as after a reconnect. */
  resend(): void {
    for (const cose of this.unacked.values()) this.link.send({ type: 'frame', cose });
  }

  /** An unsolicited hello (a reboot): restores the session after a hostile hello was judged on this link. */
  hello(): void {
    this.link.send(this.pack.hello(this.next, this.unacked.size));
  }

  /** A random acked frame, if any. */
  someAcked(rng: Rng): { counter: number; cose: Uint8Array } | undefined {
    return this.acked.length === 0 ? undefined : rng.pick(this.acked);
  }
}
