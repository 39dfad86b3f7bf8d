/**
 * A simulated BMU's flash: one directory per device holding everything the firmware must keep across
 * power cuts (issue 4 item 2; docs/hw-sim.md §3). `identity.json` has the factory settings,
 * the private key generated on the device (never exported: only the firmware's signing path reads
 * it) and the certificate chain; `runtime.json` the frame-counter reservation and the battery
 * model's snapshot; `ring.journal` the unacknowledged frames (journal.ts). Small files are replaced
 * atomically (flash-files.ts); the ring is append-only with per-record CRCs. All files are 0600.
 *
 * Counter reservation: like firmware sparing flash wear, the counter is not written per frame.
 * Before handing out counter n ≥ reserved, flash durably raises `reserved` to n + block; after a
 * crash the next boot starts at `reserved`, so a counter is never reused (some are skipped — a gap
 * the gateway records) and never goes backwards. A clean close writes the exact next counter, so an
 * orderly restart leaves no gap. Every mutation runs on one promise queue, so callers may fire
 * operations concurrently and they still hit the disk in call order.
 */
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ackRanges, publicKeyFromSecretPortable, type AckRange, type SignatureAlg } from '../protocol/index.js';
import { SimError } from './errors.js';
import { parseStateJson, readIfExists, STATE_FILE_MODE, syncDir, writeAtomic } from './flash-files.js';
import {
  checkFactory,
  configError,
  decodeIdentity,
  encodeIdentity,
  encodeRuntime,
  identityView,
  IDENTITY_FORMAT,
  RUNTIME_FORMAT,
  type FactorySettings,
  type FlashIdentity,
  type IdentityFile,
} from './flash-state.js';
import { frameRecord, freeRecord, JOURNAL_HEADER, scanJournal } from './journal.js';
import { FrameRing, type RingEntry } from './ring.js';

export type { FactorySettings, FlashIdentity } from './flash-state.js';

export interface FlashOptions {
  readonly dir: string;
  /** Required the first time (a blank device); later, given values overwrite (a firmware update). */
  readonly factory?: FactorySettings;
  /** Resend buffer size in frames (default 4096). */
  readonly ringCapacity?: number;
  /** Counters reserved per runtime.json write (default 64): the largest gap a crash can leave. */
  readonly counterBlock?: number;
  /** fsync files and the directory (default true); false survives process crashes only. */
  readonly durable?: boolean;
  /** Journal growth over twice the live bytes that triggers compaction (default 64 KiB). */
  readonly compactSlackBytes?: number;
}

/** What the last boot found. */
export interface BootReport {
  /** Bytes cut from the journal's torn tail (0 after a clean shutdown). */
  readonly tornBytes: number;
  readonly tornReason: string | undefined;
  /** Frames dropped while replaying because the ring capacity is now smaller. */
  readonly droppedOnReplay: number;
  /** Whether the previous run closed cleanly (exact counter saved). */
  readonly cleanShutdown: boolean;
}

const JOURNAL_FILE = 'ring.journal';

export class DeviceFlash {
  readonly boot: BootReport;
  readonly ring: FrameRing;
  /** The battery model's last saved snapshot (runtime.json), for building the sensor at boot. */
  readonly savedSensor: unknown;
  private id: IdentityFile;
  private view: FlashIdentity;
  private next: number;
  private reserved: number;
  private journal: FileHandle | undefined;
  private journalBytes: number;
  private queue: Promise<unknown> = Promise.resolve();
  private sensorSource: (() => unknown) | undefined;
  private lastSensor: unknown;

  private constructor(
    readonly options: FlashOptions,
    init: { id: IdentityFile; next: number; reserved: number; ring: FrameRing; journal: FileHandle; journalBytes: number; boot: BootReport; sensor: unknown },
  ) {
    this.id = init.id;
    this.view = identityView(init.id);
    this.next = init.next;
    this.reserved = init.reserved;
    this.ring = init.ring;
    this.journal = init.journal;
    this.journalBytes = init.journalBytes;
    this.boot = init.boot;
    this.savedSensor = init.sensor;
    this.lastSensor = init.sensor;
  }

  /**
   * Opens (or, with `factory`, creates) a device's flash: reads the identity and runtime files,
   * replays the journal, cuts a torn tail, and jumps the counter to the reservation. Throws
   * FLASH_CONFIG (blank device without factory settings, bad settings), FLASH_CORRUPT (a state file
   * that is not ours), or the fs error.
   */
  static async open(options: FlashOptions): Promise<DeviceFlash> {
    const durable = options.durable ?? true;
    const capacity = options.ringCapacity ?? 4096;
    if (!Number.isSafeInteger(capacity) || capacity < 1) configError('ringCapacity: expected a positive integer');
    if (options.factory) checkFactory(options.factory);
    await mkdir(options.dir, { recursive: true, mode: 0o700 });
    const path = (name: string): string => join(options.dir, name);
    // A temp file left by a crash mid-write is garbage: the real file still has the last good state.
    for (const name of ['identity.json', 'runtime.json', JOURNAL_FILE]) await rm(path(`${name}.tmp`), { force: true });

    const runtimeBytes = await readIfExists(path('runtime.json'));
    const runtime = runtimeBytes ? parseStateJson(runtimeBytes, path('runtime.json'), RUNTIME_FORMAT) : undefined;
    const reserved = runtime?.counterReserved;
    if (runtime && (typeof reserved !== 'number' || !Number.isSafeInteger(reserved) || reserved < 0)) {
      throw new SimError('FLASH_CORRUPT', `hw-sim: ${path('runtime.json')}: field "counterReserved" is missing or malformed`);
    }
    const identityBytes = await readIfExists(path('identity.json'));
    let id: IdentityFile;
    if (identityBytes) {
      if (!runtime) throw new SimError('FLASH_CORRUPT', `hw-sim: ${options.dir}: identity.json without runtime.json (the counter would restart)`);
      id = decodeIdentity(parseStateJson(identityBytes, path('identity.json'), IDENTITY_FORMAT), path('identity.json'));
      const f = options.factory;
      if (f && (f.model !== id.model || f.firmware !== id.firmware || f.label !== id.label)) {
        id = { ...id, model: f.model, firmware: f.firmware, label: f.label };
        await writeAtomic(path('identity.json'), encodeIdentity(id), durable);
      }
    } else {
      const f = options.factory ?? configError(`${options.dir}: a blank device needs factory settings`);
      // runtime.json first: an identity must never exist without a counter reservation beside it.
      if (!runtime) await writeAtomic(path('runtime.json'), encodeRuntime(0, null, true), durable);
      id = { model: f.model, firmware: f.firmware, label: f.label, alg: null, secretKey: null, chain: [], serial: '' };
      await writeAtomic(path('identity.json'), encodeIdentity(id), durable);
    }

    const ring = new FrameRing(capacity);
    const { journal, journalBytes, torn, tornReason, dropped } = await openJournal(path(JOURNAL_FILE), ring, durable);
    const start = Math.max(typeof reserved === 'number' ? reserved : 0, ring.lastCounter + 1);
    const boot: BootReport = { tornBytes: torn, tornReason, droppedOnReplay: dropped, cleanShutdown: runtime?.clean === true };
    const flash = new DeviceFlash(options, { id, next: start, reserved: start, ring, journal, journalBytes, boot, sensor: runtime?.sensor ?? undefined });
    // Mark the run as not (yet) cleanly shut down, so the next boot can tell a crash from a close.
    await flash.enqueue(() => flash.writeRuntime(false));
    return flash;
  }

  get identity(): FlashIdentity {
    return this.view;
  }

  /** The counter the next frame will carry (hello field 8). */
  get nextCounter(): number {
    return this.next;
  }

  /** Registers where the battery model's snapshot comes from; read whenever runtime.json is written. */
  setSensorSource(source: (() => unknown) | undefined): void {
    this.sensorSource = source;
  }

  /**
   * The private key, for the firmware's signing path only: never log, print, send or store it
   * elsewhere. Undefined before keygen.
   */
  secretKey(): Uint8Array | undefined {
    return this.id.secretKey ?? undefined;
  }

  /** Takes the next counter, durably raising the reservation first when it is used up. */
  takeCounter(): Promise<number> {
    return this.enqueue(async () => {
      if (this.next >= this.reserved) {
        this.reserved = this.next + Math.max(1, this.options.counterBlock ?? 64);
        await this.writeRuntime(false);
      }
      return this.next++;
    });
  }

  /** Appends a frame to the ring, durably, before anyone sends it. Returns the frames the full ring dropped. */
  appendFrame(entry: RingEntry): Promise<RingEntry[]> {
    return this.enqueue(async () => {
      await this.appendJournal(frameRecord(entry.counter, entry.producedAt, entry.cose));
      const dropped = this.ring.add(entry);
      await this.maybeCompact();
      return dropped;
    });
  }

  /** Frees acknowledged counters (idempotent); returns those the ring held, ascending. */
  free(ranges: readonly AckRange[]): Promise<number[]> {
    return this.enqueue(async () => {
      const freed = this.ring.free(ranges);
      if (freed.length === 0) return freed;
      const recs = ackRanges(freed).map(([lo, hi]) => freeRecord(lo, hi));
      // Not fsynced on its own: the next frame's datasync makes it durable. A power cut before that
      // brings the frames back and they are sent again — a duplicate the host dedupes, never a loss.
      await this.appendJournal(Buffer.concat(recs), false);
      await this.maybeCompact();
      return freed;
    });
  }

  /**
   * Stores a new key pair's secret and starts a new identity: the chain is wiped and so is the
   * ring (frames signed by the old key would not verify against the new chain). Returns the frames
   * wiped. The counter continues: it is never reused, whatever the key.
   */
  setKey(alg: SignatureAlg, secretKey: Uint8Array): Promise<RingEntry[]> {
    publicKeyFromSecretPortable(alg, secretKey); // throws COSE_KEY for an invalid secret: a firmware bug
    return this.enqueue(async () => {
      const wiped = this.ring.clear();
      if (wiped.length > 0) await this.appendJournal(freeRecord(0, Number.MAX_SAFE_INTEGER));
      await this.writeIdentity({ ...this.id, alg, secretKey: Uint8Array.from(secretKey), chain: [], serial: '' });
      return wiped;
    });
  }

  /** Stores the certificate chain and the pack serial it names (the caller has checked both). */
  setChain(chain: readonly Uint8Array[], serial: string): Promise<void> {
    return this.enqueue(() => this.writeIdentity({ ...this.id, chain: chain.map((c) => Uint8Array.from(c)), serial }));
  }

  /**
   * Waits for queued writes, saves the exact next counter and the sensor snapshot, closes the
   * journal. The journal is closed even when saving fails (the error is then rethrown): the next
   * boot treats that as a crash and jumps to the reservation.
   */
  close(): Promise<void> {
    return this.enqueue(async () => {
      try {
        await this.writeRuntime(true);
      } finally {
        const h = this.journal;
        this.journal = undefined;
        await h?.close();
      }
    });
  }

  /** Runs `op` after every earlier operation; FLASH_CLOSED after close(). */
  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (!this.journal) throw new SimError('FLASH_CLOSED', `hw-sim: flash ${this.options.dir} is closed`);
      return op();
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private get durable(): boolean {
    return this.options.durable ?? true;
  }

  private async writeIdentity(id: IdentityFile): Promise<void> {
    await writeAtomic(join(this.options.dir, 'identity.json'), encodeIdentity(id), this.durable);
    this.id = id;
    this.view = identityView(id);
  }

  private async writeRuntime(clean: boolean): Promise<void> {
    if (clean) this.reserved = this.next;
    if (this.sensorSource) this.lastSensor = this.sensorSource();
    await writeAtomic(join(this.options.dir, 'runtime.json'), encodeRuntime(this.reserved, this.lastSensor, clean), this.durable);
  }

  private async appendJournal(bytes: Uint8Array, sync = true): Promise<void> {
    const h = this.journal;
    if (!h) throw new SimError('FLASH_CLOSED', `hw-sim: flash ${this.options.dir} is closed`);
    await h.write(bytes);
    if (sync && this.durable) await h.datasync();
    this.journalBytes += bytes.length;
  }

  /** Rewrites the journal to the live frames when it holds mostly freed ones (write, fsync, rename). */
  private async maybeCompact(): Promise<void> {
    const liveBytes = this.ring.bytes + this.ring.size * 25;
    if (this.journalBytes <= 2 * liveBytes + (this.options.compactSlackBytes ?? 64 * 1024)) return;
    const path = join(this.options.dir, JOURNAL_FILE);
    const parts: Uint8Array[] = [JOURNAL_HEADER];
    for (const e of this.ring.entries()) parts.push(frameRecord(e.counter, e.producedAt, e.cose));
    const bytes = Buffer.concat(parts);
    await this.journal?.close();
    this.journal = undefined;
    await writeAtomic(path, bytes, this.durable);
    this.journal = await open(path, 'a', STATE_FILE_MODE);
    this.journalBytes = bytes.length;
  }
}

/** Opens the journal, replays it into `ring`, cuts a torn tail, and returns an append handle. */
async function openJournal(
  path: string,
  ring: FrameRing,
  durable: boolean,
): Promise<{ journal: FileHandle; journalBytes: number; torn: number; tornReason: string | undefined; dropped: number }> {
  const bytes = (await readIfExists(path)) ?? new Uint8Array(0);
  const scan = scanJournal(bytes);
  if (!scan) throw new SimError('FLASH_CORRUPT', `hw-sim: ${path}: not a ring journal (bad header)`);
  let dropped = 0;
  let last = -1;
  for (const r of scan.records) {
    if (r.kind === 'free') {
      ring.free([[r.lo, Math.max(r.lo, r.hi)]]);
    } else {
      // A CRC-valid record with a counter that does not increase is not a torn write: refuse it.
      if (r.counter <= last) throw new SimError('FLASH_CORRUPT', `hw-sim: ${path}: frame counter ${r.counter} after ${last}`);
      last = r.counter;
      dropped += ring.add({ counter: r.counter, producedAt: r.producedAt, cose: r.cose }).length;
    }
  }
  if (scan.validBytes === 0) {
    await writeAtomic(path, JOURNAL_HEADER, durable);
  } else if (scan.tornBytes > 0) {
    const h = await open(path, 'r+');
    try {
      await h.truncate(scan.validBytes);
      if (durable) await h.sync();
    } finally {
      await h.close();
    }
  }
  if (durable) await syncDir(join(path, '..'));
  const journal = await open(path, 'a', STATE_FILE_MODE);
  await journal.chmod(STATE_FILE_MODE);
  return { journal, journalBytes: Math.max(scan.validBytes, JOURNAL_HEADER.length), torn: scan.tornBytes, tornReason: scan.stop, dropped };
}
