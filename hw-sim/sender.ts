/**
 * The firmware's transmit side for frames (docs/hw-sim.md §3 "Sessions and resends"): one
 * pump that sends ring entries over the link one at a time while the link is up. A session starts
 * when a host may be listening (link up, or its `hello` request) and sets the cursor before the
 * oldest unacknowledged frame, so everything still in the ring goes out again, oldest first; new
 * frames follow in counter order. When an ack frees a frame, any older frame sent in the same
 * session and still unacknowledged was lost on the wire (a serial line delivers in order) and is
 * queued for a resend ahead of the cursor — at most MAX_GAP_RESENDS times per session, so a frame
 * the host keeps refusing costs a bounded amount of airtime until the next session.
 *
 * The pump runs outside the firmware's state queue: awaiting a paced (or stalled) link must never
 * stop the device from measuring and storing frames.
 */
import type { Message } from '../protocol/index.js';
import type { FrameRing, RingEntry } from './ring.js';

/** Gap resends per frame per session. */
export const MAX_GAP_RESENDS = 2;

interface SendState {
  /** The session of the last transmission (-1: found in flash at boot, maybe sent before). */
  session: number;
  gapResends: number;
}

/** What the sender needs from the firmware. */
export interface SenderHost {
  /** The current ring (it changes object on reboot). */
  ring(): FrameRing;
  /** Whether frames may go out now (link up, not stopped or rebooting). */
  canSend(): boolean;
  /** Sends one message; false when the link failed (counted by the host). */
  send(msg: Message): Promise<boolean>;
  /** One frame transmission happened; `resend` when this frame had been transmitted before. */
  onFrameSent(resend: boolean): void;
}

export class FrameSender {
  private session = 0;
  private cursor = -1;
  private readonly gaps = new Set<number>();
  private readonly sent = new Map<number, SendState>();
  private pumping = false;
  private wanted = false;

  constructor(private readonly host: SenderHost) {}

  /** Forgets everything and marks the ring's frames as possibly sent before (after boot or reboot). */
  adopt(ring: FrameRing): void {
    this.sent.clear();
    this.gaps.clear();
    for (const e of ring.entries()) this.sent.set(e.counter, { session: -1, gapResends: 0 });
  }

  /** A host may be listening: resend everything from the oldest unacknowledged frame. */
  startSession(): void {
    this.session++;
    this.cursor = -1;
    this.gaps.clear();
    this.wake();
  }

  /** The link is gone: nothing sent from now on belongs to the old session. */
  endSession(): void {
    this.session++;
    this.gaps.clear();
  }

  /** Frames left the ring for good (acked, dropped, wiped). */
  forget(counters: Iterable<number>): void {
    for (const c of counters) this.sent.delete(c);
  }

  /** After an ack freed `freed` (ascending): queue the older frames of this session it skipped. */
  acked(freed: readonly number[]): void {
    this.forget(freed);
    const newest = freed[freed.length - 1];
    if (newest === undefined) return;
    for (const e of this.host.ring().below(newest)) {
      const s = this.sent.get(e.counter);
      if (s?.session === this.session && s.gapResends < MAX_GAP_RESENDS) {
        s.gapResends++;
        this.gaps.add(e.counter);
      }
    }
    if (this.gaps.size > 0) this.wake();
  }

  /** There may be something to send. */
  wake(): void {
    this.wanted = true;
    if (!this.pumping) void this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.wanted) {
        this.wanted = false;
        while (this.host.canSend()) {
          const entry = this.next();
          if (!entry) break;
          const prior = this.sent.get(entry.counter);
          this.sent.set(entry.counter, { session: this.session, gapResends: prior?.gapResends ?? 0 });
          if (!(await this.host.send({ type: 'frame', cose: entry.cose }))) break;
          this.host.onFrameSent(prior !== undefined);
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Gap resends first (oldest first), then the first ring entry after the cursor. */
  private next(): RingEntry | undefined {
    const ring = this.host.ring();
    while (this.gaps.size > 0) {
      const c = Math.min(...this.gaps);
      this.gaps.delete(c);
      const e = ring.get(c);
      if (e) return e;
    }
    const e = ring.firstAfter(this.cursor);
    if (e) this.cursor = e.counter;
    return e;
  }
}
