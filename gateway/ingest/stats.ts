/**
 * Per-device ingest statistics for `gateway status` and metrics: frames stored, duplicates, replays,
 * rejects, clock skew, last seen and a decaying frame rate, keyed by pack serial (from verified
 * certificates only, so the table grows with the fleet, not with what an attacker sends). Counter
 * state proper (gaps, highest) lives in dedupe.ts; status joins the two.
 */

export interface DeviceStats {
  readonly serial: string;
  /** Frames stored in the log since start. */
  frames: number;
  /** Copies of stored frames received (acked again, not stored). */
  duplicates: number;
  /** Frames refused with COUNTER_REPLAY. */
  replays: number;
  /** Other rejects attributed to this pack (bad signature, serial mismatch, busy, ...). */
  rejects: number;
  /** Frames whose device time was further than the skew tolerance from the gateway clock. */
  clockSkewed: number;
  /** Last device time minus gateway receive time, ms. */
  lastSkewMs: number;
  /** Gateway clock of the last frame (any verdict), ms since the epoch. */
  lastSeen: number;
  /** Highest counter stored. */
  lastCounter: number;
  /** The channel the last frame came over. */
  channel: string;
  /** Frames stored per second, exponentially decayed over RATE_WINDOW_MS. */
  rate: number;
}

const RATE_WINDOW_MS = 60_000;

export class DeviceStatsTable {
  private readonly map = new Map<string, DeviceStats & { decayed: number; decayedAt: number }>();

  constructor(private readonly skewToleranceMs: number) {}

  private get(serial: string, now: number): DeviceStats & { decayed: number; decayedAt: number } {
    let d = this.map.get(serial);
    if (d === undefined) {
      d = { serial, frames: 0, duplicates: 0, replays: 0, rejects: 0, clockSkewed: 0, lastSkewMs: 0, lastSeen: now, lastCounter: -1, channel: '', rate: 0, decayed: 0, decayedAt: now };
      this.map.set(serial, d);
    }
    return d;
  }

  /** A frame of `serial` verified (whatever dedupe then decides). */
  seen(serial: string, channel: string, now: number, deviceTime: number): void {
    const d = this.get(serial, now);
    d.lastSeen = now;
    d.channel = channel;
    d.lastSkewMs = deviceTime - now;
    if (Math.abs(d.lastSkewMs) > this.skewToleranceMs) d.clockSkewed++;
  }

  stored(serial: string, counter: number, now: number): void {
    const d = this.get(serial, now);
    d.frames++;
    if (counter > d.lastCounter) d.lastCounter = counter;
    d.decayed = d.decayed * Math.exp(-(now - d.decayedAt) / RATE_WINDOW_MS) + 1;
    d.decayedAt = now;
  }

  duplicate(serial: string, now: number): void {
    this.get(serial, now).duplicates++;
  }

  replay(serial: string, now: number): void {
    this.get(serial, now).replays++;
  }

  reject(serial: string, now: number): void {
    this.get(serial, now).rejects++;
  }

  list(now: number): DeviceStats[] {
    return [...this.map.values()].map(({ decayed, decayedAt, ...d }) => ({
      ...d,
      rate: (decayed * Math.exp(-(now - decayedAt) / RATE_WINDOW_MS) * 1000) / RATE_WINDOW_MS,
    }));
  }
}
