/**
 * The gateway's ingest pipeline (issue 6 item 3; docs/gateway.md "Ingest"): transport events →
 * session (hello, certificate chain against the trust store) → verification (COSE_Sign1 with the
 * certified key, inline or on worker threads) → dedupe (duplicate, replay and gap detection by frame
 * counter) → durable append to the log (group commit) → acknowledgement to the device, sent only
 * after the append resolved (DESIGN.md decision 4). Every refusal is quarantined with its reason code
 * and the frame is not acked, so the device keeps it; nothing a device sends throws out of a handler.
 *
 * Input is held back before it piles up: once `holdInputAt` frames are in flight the pipeline's
 * `events.flow` is held and transports that can stop reading do (serial ports pause; the bytes wait
 * in the kernel and the device), until half of them are stored and acked. Every frame parsed and
 * waiting costs memory, and the garbage collector copies each one that is alive when it runs, so
 * queueing beyond what keeps the cores busy only costs (docs/gateway.md "Holding input back").
 * Memory is bounded by caps on frames in flight (per channel and in total) and on the verification
 * queue: beyond them a frame is refused with INGEST_BUSY and not acked — back-pressure onto the
 * devices' resend rings instead of growth, for the input no transport held back. The per-pack
 * counter state is snapshotted (state.ts) so that a restart replays only the log entries written
 * since the last snapshot.
 */
import { ackMessages, sha256, toHex, type LogLeaf, type Message, type TrustStore } from '../../protocol/index.js';
import { GatewayError } from '../errors.js';
import type { EncodedLeaf } from '../store/appender.js';
import type { ChannelEvents, DeviceChannel, InputFlow } from '../transport/types.js';
import { DedupeTable, type Classification, type FrameIdentity } from './dedupe.js';
import { Quarantine, type QuarantineStatus, type RejectInput } from './quarantine.js';
import { SessionTable, type SessionInfo, type SessionTableOptions } from './session.js';
import { recover, writeState, type RecoveryReport } from './state.js';
import { DeviceStatsTable, type DeviceStats } from './stats.js';
import { Committer, type ToStore } from './commit.js';
import type { IngestLog } from './log-port.js';
import type { FrameVerdict } from './verify-frame.js';
import { VerifyPool, type VerifyPoolOptions, type VerifyPoolStats } from './verify.js';

export interface PipelineOptions {
  readonly log: IngestLog;
  readonly trust: TrustStore;
  /** Directory for ingest-state.json (the gateway's data directory). */
  readonly stateDir: string;
  /** Gateway clock, ms since the epoch (default Date.now). */
  readonly now?: () => number;
  readonly verify?: VerifyPoolOptions;
  /** Dedupe: recent counters kept per pack (128), open gap ranges per pack (64). */
  readonly window?: number;
  readonly maxGaps?: number;
  /** Reject samples kept (100). */
  readonly samples?: number;
  /** Frames between receipt and ack, per channel (1024) and in total (16384). */
  readonly maxInFlightPerChannel?: number;
  readonly maxInFlight?: number;
  /**
   * Transports are asked to stop reading (`events.flow` held) at this many frames in flight, and to
   * read again once half of them are acked (2048, measured on 2 cores, where the two verification
   * workers hold up to 1024 at once — two batches of 256 each; 0: never).
   */
  readonly holdInputAt?: number;
  /** Frames per append call (1024) and append calls outstanding (4). */
  readonly appendBatchMax?: number;
  readonly appendsInFlight?: number;
  /** Snapshot the counter state every N stored frames (10,000) or T ms (30 s), whichever first. */
  readonly snapshotEvery?: number;
  readonly snapshotMs?: number;
  /** Device clocks further than this from the gateway's are flagged (5 min). */
  readonly skewToleranceMs?: number;
  /** Hello retries: first after 5 s, doubling to 60 s (also the re-ask period of unprovisioned devices). */
  readonly helloRetryMs?: number;
  readonly helloRetryMaxMs?: number;
  /** Re-check verified chains against the clock and CRLs at most this often (60 s). */
  readonly revalidateMs?: number;
  /** Called (synchronously) with each chain a session verifies, before its frames are let through (SessionTableOptions). */
  readonly chainVerified?: SessionTableOptions['chainVerified'];
}

export interface PipelineStatus {
  readonly sessions: readonly SessionInfo[];
  readonly devices: readonly (DeviceStats & { gaps: readonly (readonly [number, number])[]; missing: number })[];
  readonly quarantine: QuarantineStatus;
  readonly verify: VerifyPoolStats;
  readonly inFlight: number;
  /** Whether transports are asked to hold input back now, and how many times they have been. */
  readonly inputHeld: boolean;
  readonly inputHolds: number;
  readonly stored: number;
  readonly duplicates: number;
  readonly acksSent: number;
  readonly ackFailures: number;
  readonly appendFailures: number;
  readonly snapshotFailures: number;
  readonly committedSize: number;
  readonly recovery: RecoveryReport;
}

export class IngestPipeline {
  private readonly now: () => number;
  private readonly quarantine: Quarantine;
  private readonly sessions: SessionTable;
  private readonly dedupe: DedupeTable;
  private readonly stats: DeviceStatsTable;
  private readonly inFlightOf = new Map<DeviceChannel, number>();
  private inFlight = 0;
  private readonly committer: Committer;
  private readonly acks = new Map<DeviceChannel, number[]>();
  private acksScheduled = false;
  private committedSize: number;
  private snapshotSize: number;
  private snapshotting: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private counts = { stored: 0, duplicates: 0, acksSent: 0, ackFailures: 0, appendFailures: 0, snapshotFailures: 0 };
  private readonly limits: { perChannel: number; total: number; hold: number; batch: number; appends: number; snapEvery: number; snapMs: number };
  private readonly flow = new FlowGate();

  /** The handlers to give the transports (`transport.start(pipeline.events)`). */
  readonly events: ChannelEvents;

  private constructor(
    private readonly opts: PipelineOptions,
    private readonly pool: VerifyPool,
    dedupe: DedupeTable,
    readonly recovery: RecoveryReport,
  ) {
    this.now = opts.now ?? Date.now;
    this.dedupe = dedupe;
    this.quarantine = new Quarantine({ samples: opts.samples ?? 100, now: this.now });
    this.stats = new DeviceStatsTable(opts.skewToleranceMs ?? 300_000);
    this.sessions = new SessionTable({
      trust: opts.trust,
      now: this.now,
      reject: (r) => {
        this.reject(r);
      },
      ...(opts.helloRetryMs === undefined ? {} : { helloRetryMs: opts.helloRetryMs }),
      ...(opts.helloRetryMaxMs === undefined ? {} : { helloRetryMaxMs: opts.helloRetryMaxMs }),
      ...(opts.revalidateMs === undefined ? {} : { revalidateMs: opts.revalidateMs }),
      ...(opts.chainVerified === undefined ? {} : { chainVerified: opts.chainVerified }),
    });
    this.limits = {
      perChannel: opts.maxInFlightPerChannel ?? 1024,
      total: opts.maxInFlight ?? 16_384,
      hold: opts.holdInputAt ?? 2048,
      batch: opts.appendBatchMax ?? 1024,
      appends: opts.appendsInFlight ?? 4,
      snapEvery: opts.snapshotEvery ?? 10_000,
      snapMs: opts.snapshotMs ?? 30_000,
    };
    this.committer = new Committer(opts.log, this.limits, {
      stored: (batch, first) => {
        this.committed(batch, first);
      },
      failed: (batch, e) => {
        this.appendFailed(batch, e);
      },
    });
    this.committedSize = opts.log.size;
    this.snapshotSize = recovery.snapshotSize;
    this.timer = setInterval(() => {
      if (this.committedSize > this.snapshotSize) this.snapshot();
    }, this.limits.snapMs);
    this.timer.unref();
    // Entries were replayed: a fresh snapshot now keeps the next restart's replay short.
    if (recovery.replayed > 0) this.snapshot();
    this.events = {
      flow: this.flow,
      open: (ch) => {
        if (!this.closed) this.sessions.open(ch);
      },
      message: (ch, msg) => {
        this.onMessage(ch, msg);
      },
      reject: (ch, code, detail, raw) => {
        this.reject({ code, channel: ch.id, detail, raw });
      },
      close: (ch) => {
        this.sessions.closeChannel(ch);
      },
    };
  }

  /**
   * Recovers the per-pack counter state (snapshot + log entries after it), starts the verification
   * pool and returns the pipeline. Throws GatewayError INGEST_CONFIG for options out of range,
   * INGEST_WORKER when workers cannot start, STORE_* when the log cannot be read.
   */
  static async open(opts: PipelineOptions): Promise<IngestPipeline> {
    const checks: [string, number | undefined, number, number][] = [
      ['maxInFlightPerChannel', opts.maxInFlightPerChannel, 1, 1_000_000],
      ['maxInFlight', opts.maxInFlight, 1, 10_000_000],
      ['holdInputAt', opts.holdInputAt, 0, 10_000_000],
      ['appendBatchMax', opts.appendBatchMax, 1, 65_536],
      ['appendsInFlight', opts.appendsInFlight, 1, 64],
      ['snapshotEvery', opts.snapshotEvery, 1, 1e9],
      ['snapshotMs', opts.snapshotMs, 10, 86_400_000],
    ];
    for (const [name, v, lo, hi] of checks) {
      if (v !== undefined && (!Number.isSafeInteger(v) || v < lo || v > hi)) {
        throw new GatewayError('INGEST_CONFIG', `gateway: ingest ${name} must be an integer in ${lo}..${hi}, got ${v}`);
      }
    }
    let dedupe: DedupeTable;
    try {
      dedupe = new DedupeTable({ window: opts.window, maxGaps: opts.maxGaps, lookup: (s, c) => opts.log.frameIdentity(s, c) });
    } catch (e) {
      throw new GatewayError('INGEST_CONFIG', `gateway: ingest ${(e as Error).message.replace(/^gateway: /, '')}`);
    }
    const report = await recover(opts.stateDir, dedupe, opts.log.size, (from, to) => opts.log.leaves(from, to));
    const pool = await VerifyPool.start(opts.verify);
    return new IngestPipeline(opts, pool, dedupe, report);
  }

  private reject(r: RejectInput): void {
    this.quarantine.record(r);
    if (r.serial !== undefined && r.code !== 'COUNTER_REPLAY') this.stats.reject(r.serial, this.now());
  }

  private onMessage(ch: DeviceChannel, msg: Message): void {
    if (this.closed) return;
    if (msg.type !== 'frame') {
      this.sessions.message(ch, msg);
      return;
    }
    const gate = this.sessions.gate(ch);
    if (!gate.ok) {
      this.reject({ code: gate.code, channel: ch.id, serial: gate.serial, detail: gate.detail, raw: msg.cose });
      return;
    }
    const device = gate.device;
    const mine = this.inFlightOf.get(ch) ?? 0;
    if (mine >= this.limits.perChannel || this.inFlight >= this.limits.total) {
      this.reject({ code: 'INGEST_BUSY', channel: ch.id, serial: device.packSerial, detail: `gateway: ${mine} frames of this channel and ${this.inFlight} in total await storage` });
      return;
    }
    const receivedAt = this.now();
    const cose = msg.cose;
    const queued = this.pool.submit({ cose, key: device, certSha256: device.certSha256, leaf: { receivedAt, source: ch.source } }, (v) => {
      this.verified(ch, device.packSerial, device.certSha256, cose, receivedAt, v);
    });
    if (!queued) {
      this.reject({ code: 'INGEST_BUSY', channel: ch.id, serial: device.packSerial, detail: 'gateway: verification queue full' });
      return;
    }
    this.inFlightOf.set(ch, mine + 1);
    this.inFlight++;
    if (this.inFlight === this.limits.hold) this.flow.set(true);
  }

  private release(ch: DeviceChannel): void {
    this.inFlight--;
    if (this.flow.held && this.inFlight <= this.limits.hold / 2) this.flow.set(false);
    const n = (this.inFlightOf.get(ch) ?? 1) - 1;
    if (n <= 0) this.inFlightOf.delete(ch);
    else this.inFlightOf.set(ch, n);
  }

  private verified(ch: DeviceChannel, serial: string, certSha256: Uint8Array, cose: Uint8Array, receivedAt: number, v: FrameVerdict): void {
    if (!v.ok) {
      this.release(ch);
      this.reject({ code: v.code, channel: ch.id, serial, counter: v.counter, detail: v.detail, raw: cose });
      return;
    }
    this.stats.seen(serial, ch.id, receivedAt, v.time);
    const leaf: LogLeaf = { receivedAt, source: ch.source, certSha256, frame: cose };
    const encoded = v.leaf;
    const c = this.dedupe.classify(serial, v.counter, v.identity);
    if (!(c instanceof Promise)) {
      this.classified(ch, serial, v.counter, v.identity, leaf, encoded, c);
      return;
    }
    c.then(
      (k) => {
        this.classified(ch, serial, v.counter, v.identity, leaf, encoded, k);
      },
      (e: unknown) => {
        this.release(ch);
        this.reject({ code: 'STORE_UNAVAILABLE', channel: ch.id, serial, counter: v.counter, detail: `gateway: counter lookup failed: ${(e as Error).message}` });
      },
    );
  }

  private classified(ch: DeviceChannel, serial: string, counter: number, identity: FrameIdentity, leaf: LogLeaf, encoded: EncodedLeaf | undefined, c: Classification): void {
    switch (c.kind) {
      case 'duplicate':
        this.counts.duplicates++;
        this.stats.duplicate(serial, this.now());
        if (c.durable === true) {
          this.release(ch);
          this.ack(ch, counter);
          return;
        }
        void c.durable.then((durable) => {
          this.release(ch);
          if (durable) this.ack(ch, counter);
        });
        return;
      case 'replay':
        this.release(ch);
        this.stats.replay(serial, this.now());
        this.reject({
          code: 'COUNTER_REPLAY',
          channel: ch.id,
          serial,
          counter,
          detail: `gateway: counter ${counter} of ${serial} is already stored with another signed payload (this copy's payload SHA-256 ${toHex(sha256(Buffer.from(identity, 'latin1'))).slice(0, 16)}…): rollback or cloned key`,
          raw: leaf.frame,
        });
        return;
      default:
        if (this.closed) {
          this.dedupe.abort(serial, counter);
          this.release(ch);
          return;
        }
        this.committer.push(encoded === undefined ? { ch, serial, counter, identity, leaf } : { ch, serial, counter, identity, leaf, encoded });
    }
  }

  private committed(batch: readonly ToStore[], first: number): void {
    const now = this.now();
    for (const p of batch) {
      this.dedupe.commit(p.serial, p.counter, p.identity);
      this.stats.stored(p.serial, p.counter, now);
      this.counts.stored++;
      this.release(p.ch);
      this.ack(p.ch, p.counter);
    }
    this.committedSize = Math.max(this.committedSize, first + batch.length);
    if (this.committedSize - this.snapshotSize >= this.limits.snapEvery) this.snapshot();
  }

  private appendFailed(batch: readonly ToStore[], e: unknown): void {
    this.counts.appendFailures++;
    const why = e instanceof Error ? e.message : String(e);
    for (const p of batch) {
      this.dedupe.abort(p.serial, p.counter);
      this.release(p.ch);
      this.reject({ code: 'STORE_UNAVAILABLE', channel: p.ch.id, serial: p.serial, counter: p.counter, detail: `gateway: append failed, not acked: ${why}` });
    }
  }

  /** Queues an ack for `counter` on `ch`; acks are coalesced per channel (docs/protocol.md §4.3). */
  private ack(ch: DeviceChannel, counter: number): void {
    if (!ch.isOpen) return; // the device resends after reconnecting; the copy is a duplicate, acked then
    let list = this.acks.get(ch);
    if (list === undefined) {
      list = [];
      this.acks.set(ch, list);
    }
    list.push(counter);
    if (this.acksScheduled) return;
    this.acksScheduled = true;
    setImmediate(() => {
      this.acksScheduled = false;
      const all = [...this.acks];
      this.acks.clear();
      for (const [c, counters] of all) {
        for (const m of ackMessages(counters)) {
          c.send(m).then(
            () => {
              this.counts.acksSent++;
            },
            () => {
              this.counts.ackFailures++;
            },
          );
        }
      }
    });
  }

  private snapshot(): void {
    if (this.snapshotting !== undefined) return;
    const size = this.committedSize;
    this.snapshotting = writeState(this.opts.stateDir, this.dedupe, size, this.now())
      .then(
        () => {
          this.snapshotSize = size;
              },
        () => {
          this.counts.snapshotFailures++;
        },
      )
      .finally(() => {
        this.snapshotting = undefined;
      });
  }

  /** Replaces the trust store (reloaded bundle) and re-judges every open session. */
  setTrust(trust: TrustStore): void {
    this.sessions.setTrust(trust);
  }

  status(): PipelineStatus {
    const now = this.now();
    return {
      sessions: this.sessions.list(),
      devices: this.stats.list(now).map((d) => {
        const s = this.dedupe.snapshot(d.serial);
        return { ...d, gaps: s?.gaps ?? [], missing: this.dedupe.missing(d.serial) };
      }),
      quarantine: this.quarantine.status(),
      verify: this.pool.stats,
      inFlight: this.inFlight,
      inputHeld: this.flow.held,
      inputHolds: this.flow.holds,
      ...this.counts,
      committedSize: this.committedSize,
      recovery: this.recovery,
    };
  }

  /** Rejects so far with `code` (a shortcut for tests and metrics). */
  rejects(code: string): number {
    return this.quarantine.count(code);
  }

  /**
   * Stops taking frames, lets frames already verified reach the log (their acks are sent if the
   * channels are still open), writes a final snapshot and stops the workers. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.flow.set(false);
    this.sessions.close();
    await this.pool.close();
    await this.committer.drain();
    await this.snapshotting;
    if (this.committedSize > this.snapshotSize) {
      this.snapshot();
      await this.snapshotting;
    }
  }
}

/** The pipeline's side of ChannelEvents.flow. */
class FlowGate implements InputFlow {
  held = false;
  holds = 0;
  readonly #listeners = new Set<(held: boolean) => void>();

  set(held: boolean): void {
    if (held === this.held) return;
    this.held = held;
    if (held) this.holds++;
    for (const l of [...this.#listeners]) {
      try {
        l(held);
      } catch {
        // a transport's pause or resume failing must not stop the acks that release it
      }
    }
  }

  watch(listener: (held: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }
}
