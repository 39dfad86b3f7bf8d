/**
 * LogStore: the gateway's durable RFC 9162 Merkle log of accepted frames (DESIGN.md decisions 3, 4
 * and 6; docs/gateway.md "Log storage"). Appends are group-committed and resolve only once fsynced;
 * reads, proofs and tree hashes come from segment files through protocol's HashReader in O(log n)
 * reads; checkpoints are signed over the durable size only and checked against the tree on every
 * open, so the gateway never signs two inconsistent checkpoints; a torn tail is cut on open, never
 * a refusal to start; disk use stays under a quota by pruning only what the ledger acknowledged.
 * Memory and open time do not grow with the history. This file is the facade; each concern lives in
 * its own file beside it.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { proveRecord, proveTree, signCheckpoint, storedHashCount, storedHashIndex, treeHash, type NoteSigner } from '../../protocol/index.js';
import { GatewayError, invariant } from '../errors.js';
import { Appender, type AppendResult, type LeafInput } from './appender.js';
import { CheckpointWriter, checkpointDue, parseStored, readSegmentCheckpoints, type CheckpointPolicy, type StoredCheckpoint } from './checkpoints.js';
import { Entry, TaskQueue, checkIndex, firstIndex, readIdxRange, readLeaf, readLeafAt, readLeavesOf, segPath, type StoreCore, type StoreStats, type StoredEntry } from './core.js';
import { FILES, IDX_RECORD, MAX_LEAF_RECORD, parseLeafRecord, parseSegmentFileName, readIdxRecord, segmentFileName, type SealedLayout } from './format.js';
import { FdCache, ioError, writeAtomic } from './files.js';
import { FrontierReader, SegmentLayout, StoreHashReader } from './hashes.js';
import { findCounter, packHistory, writePackFile, type TimeRange } from './history.js';
import { PACK_ORDER_MIN_BITS, checkLatest, checkOptions, openConfig, readSideFiles, recoverLog, replayPacks, type LogStoreOptions, type OpenReport } from './open.js';
import { readSealedLayout, sealSegment, sealable } from './sealed.js';
import { PackIndex } from './packs.js';
import { measureUsage } from './quota.js';
import { encodeState, type PackSummary } from './state.js';
import { SegmentWriter } from './writer.js';

const range = (why: string): GatewayError => new GatewayError('STORE_RANGE', `gateway: store: ${why}`);
const yieldToLoop = (): Promise<void> =>
  new Promise((resolve) => {
    setImmediate(resolve);
  });

/**
 * Runs a block read and returns what it threw, so entries() can yield every entry before a damaged
 * record and only then throw: the error comes exactly at the damaged entry, as callers (gateway
 * verify) expect, whatever the block size.
 */
function collect(read: () => void): { error: unknown } | undefined {
  try {
    read();
    return undefined;
  } catch (error) {
    return { error };
  }
}

export class LogStore {
  readonly #core: StoreCore;
  readonly #appender: Appender;
  readonly #cpWriter: CheckpointWriter;
  readonly #release: () => Promise<void>;
  readonly #report: OpenReport;
  readonly #queue: TaskQueue;
  readonly #clock: () => number;
  /** The latest checkpoint and when it was signed (for one found on open: the open time). */
  #latest: { cp: StoredCheckpoint; at: number } | undefined;
  #closed = false;
  /** Segments whose pack-order rewrite is queued. */
  readonly #sealing = new Set<number>();

  private constructor(core: StoreCore, queue: TaskQueue, report: OpenReport, latest: StoredCheckpoint | undefined, release: () => Promise<void>, maxBatch: number, clock: () => number) {
    this.#core = core;
    this.#queue = queue;
    this.#report = report;
    this.#clock = clock;
    this.#latest = latest && { cp: latest, at: clock() };
    this.#release = release;
    this.#cpWriter = new CheckpointWriter(core.dir);
    this.#appender = new Appender(
      core,
      {
        persistState: () => this.#persistState(),
        release: (k) => this.#cpWriter.forget(k),
        sealed: (k) => {
          this.#enqueue(async () => {
            await writePackFile(core, k);
            await this.#persistState();
          }).catch(() => {
            core.stats.ioErrors++; // open() rebuilds a missing pack file; history falls back to the index
          });
          // The segment before k is now neither the last nor above the mark: rewrite it in pack order.
          if (sealable(core, k - 1)) this.#sealBacklog(k - 1);
        },
      },
      maxBatch,
    );
  }

  /**
   * Opens (creating if needed) the log in `options.dir`, recovering from a crash. Throws
   * STORE_CONFIG (bad options, another log's directory), STORE_LOCKED (another live process),
   * STORE_CORRUPT (damage beyond a torn tail; read-only opens report it instead), STORE_IO.
   */
  static async open(options: LogStoreOptions): Promise<LogStore> {
    const o = checkOptions(options);
    const { config, created, release, takenOver } = await openConfig(o);
    const fds = new FdCache();
    try {
      const side = await readSideFiles(o.dir, config, o.readOnly);
      const layout = new SegmentLayout(config.segmentBits);
      const rec = await recoverLog(o.dir, layout, fds, side, o.readOnly);
      const sealed = new Map<number, SealedLayout>();
      for (const name of await readdir(o.dir)) {
        const f = parseSegmentFileName(name);
        if (f?.kind !== 'sealed' || f.k < rec.firstSegment || layout.start(f.k + 1) > rec.size) continue;
        const l = readSealedLayout({ fds }, join(o.dir, name), layout.perSegment);
        if (l === undefined) throw new GatewayError('STORE_CORRUPT', `gateway: store: ${name}: damaged header or size`); // recovery checked it: a bug or a race
        sealed.set(f.k, l);
      }
      const queue = new TaskQueue();
      const stats: StoreStats = { appendCalls: 0, appendedEntries: 0, commits: 0, quotaRejects: 0, inputRejects: 0, ioErrors: 0, prunedSegments: 0, checkpoints: 0, packFilesRebuilt: 0, sealedSegments: 0 };
      const coreRef: { core?: StoreCore } = {};
      const reader = new StoreHashReader(o.dir, layout, fds, side.pruned, () => storedHashCount(coreRef.core?.size ?? 0), () => coreRef.core?.firstSegment ?? 0);
      const core: StoreCore = {
        dir: o.dir,
        config,
        layout,
        fds,
        pruned: side.pruned,
        reader,
        packs: new PackIndex(join(o.dir, FILES.registry), side.serials, side.registryBytes),
        readOnly: o.readOnly,
        quotaBytes: o.quotaBytes,
        stats,
        writer: o.readOnly ? undefined : new SegmentWriter(o.dir, layout, new FrontierReader(reader), rec.size, rec.leavesEnd),
        sealed,
        packOrder: o.packOrder ?? config.segmentBits >= PACK_ORDER_MIN_BITS,
        size: rec.size,
        firstSegment: rec.firstSegment,
        syncedSize: Math.min(side.state?.syncedSize ?? 0, rec.size),
        checkpointSize: side.latest?.size ?? 0,
        lastReceivedAt: 0,
        usage: 0,
        enqueue: (task) => queue.run(task),
      };
      coreRef.core = core;
      const mismatch = checkLatest(core, side.latest);
      if (mismatch !== undefined && !o.readOnly) throw new GatewayError('STORE_CORRUPT', `gateway: store: ${mismatch}`);
      core.packs.load(side.state);
      const replayedEntries = replayPacks(core, side.state?.size ?? 0);
      if (core.size > firstIndex(core)) core.lastReceivedAt = readIdxRecord(readIdxRange(core, core.size - 1, core.size), 0).receivedAt;
      const names = await readdir(o.dir);
      core.usage = await measureUsage(o.dir, names);
      const report: OpenReport = {
        created,
        size: core.size,
        firstIndex: firstIndex(core),
        cutEntries: rec.cutEntries,
        cutBytes: rec.cutBytes,
        ...(rec.cutReason !== undefined ? { cutReason: rec.cutReason } : {}),
        repairedIdx: rec.repairedIdx,
        repairedHashes: rec.repairedHashes,
        deletedFiles: rec.deletedFiles,
        replayedEntries,
        ...(takenOver !== undefined ? { lockTakenOver: takenOver } : {}),
        ...(side.stateIgnored !== undefined ? { stateIgnored: side.stateIgnored } : {}),
        ...(side.latest ? { latestCheckpointSize: side.latest.size } : {}),
        ...(rec.corrupt ? { corrupt: rec.corrupt } : mismatch !== undefined ? { corrupt: { index: side.latest?.size ?? 0, reason: mismatch } } : {}),
      };
      const store = new LogStore(core, queue, report, side.latest, release, o.maxBatchEntries, o.clock);
      if (!o.readOnly) {
        // Sealed segments whose pack file a crash prevented (normally at most the last one).
        const have = new Set(names);
        for (let k = core.firstSegment; core.layout.start(k + 1) <= core.size; k++) {
          if (!core.sealed.has(k) && !have.has(segmentFileName(k, 'packs'))) await writePackFile(core, k);
        }
        await store.#persistState(); // moves the recovery mark up to what was just verified
        store.#sealBacklog(core.firstSegment); // segments a crash (or an older version) left in entry order
      }
      return store;
    } catch (e) {
      fds.closeAll();
      await release();
      throw ioError('opening the log', e);
    }
  }

  get report(): OpenReport {
    return this.#report;
  }
  /** Number of durable entries (the tree size every read and proof defaults to). */
  get size(): number {
    return this.#core.size;
  }
  /** First entry still on disk; earlier ones were pruned after the ledger acknowledged them. */
  get firstIndex(): number {
    return firstIndex(this.#core);
  }
  get origin(): string {
    return this.#core.config.origin;
  }
  get syncedSize(): number {
    return this.#core.syncedSize;
  }
  get usage(): { readonly bytes: number; readonly quotaBytes: number } {
    return { bytes: this.#core.usage, quotaBytes: this.#core.quotaBytes };
  }
  get stats(): Readonly<StoreStats> {
    return { ...this.#core.stats };
  }

  /**
   * Appends leaves; resolves once all of them are durable (fsynced), with their indexes — only
   * then may they be acknowledged. Rejects with STORE_INPUT (bad leaf, serial or counter; nothing
   * queued), STORE_QUOTA, STORE_IO, STORE_CLOSED.
   */
  append(items: readonly LeafInput[]): Promise<AppendResult> {
    return this.#appender.append(items);
  }

  /** Entry `index`. Throws STORE_RANGE (beyond the log or pruned), STORE_CORRUPT, STORE_IO. */
  get(index: number): StoredEntry {
    this.#live();
    return this.#entry(readLeaf(this.#core, index));
  }

  /** The stored leaf hash of entry `index` (what the tree and proofs use). Throws as get(). */
  leafHash(index: number): Uint8Array {
    this.#live();
    checkIndex(this.#core, index);
    return this.#core.reader.readHashes([storedHashIndex(0, index)])[0] as Uint8Array;
  }

  /** RFC 9162 root of the first `size` entries (default: all). Throws STORE_RANGE. */
  root(size = this.size): Uint8Array {
    this.#live();
    this.#checkSize(size, 'size');
    return treeHash(size, this.#core.reader);
  }

  /** RFC 9162 §2.1.3 inclusion proof of entry `index` in the tree of `size`. Throws STORE_RANGE. */
  inclusionProof(index: number, size = this.size): Uint8Array[] {
    this.#live();
    this.#checkSize(size, 'size');
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) throw range(`entry ${String(index)}: expected an integer below the tree size ${size}`);
    return proveRecord(size, index, this.#core.reader);
  }

  /** RFC 9162 §2.1.4 consistency proof from `oldSize` to `newSize` (default: all). Throws STORE_RANGE. */
  consistencyProof(oldSize: number, newSize = this.size): Uint8Array[] {
    this.#live();
    this.#checkSize(newSize, 'new size');
    if (!Number.isSafeInteger(oldSize) || oldSize < 0 || oldSize > newSize) throw range(`old size ${String(oldSize)}: expected an integer in [0, ${newSize}]`);
    return proveTree(newSize, oldSize, this.#core.reader);
  }

  /**
   * Entries [from, to) in order, read sequentially in large blocks (sync to the ledger, `gateway
   * verify`). Yields to the event loop between blocks. Throws STORE_RANGE, STORE_CORRUPT, STORE_IO.
   */
  async *entries(from = this.firstIndex, to = this.size): AsyncGenerator<StoredEntry> {
    this.#live();
    if (!Number.isSafeInteger(to) || to > this.size || to < 0) throw range(`end ${String(to)}: expected an integer in [0, ${this.size}]`);
    if (from >= to) return;
    checkIndex(this.#core, from);
    const core = this.#core;
    for (let a = from; a < to; ) {
      const k = core.layout.segmentOf(a);
      if (k < core.firstSegment) throw range(`entry ${a} was pruned while iterating`);
      const b = Math.min(to, core.layout.start(k + 1), a + 4096);
      const idx = readIdxRange(core, a, b);
      if (core.sealed.has(k)) {
        // Pack order: entries in index order are scattered through the file, one read each; the
        // block is read in one synchronous step, so a concurrent rewrite cannot split it.
        const block: StoredEntry[] = [];
        const failure = collect(() => {
          for (let i = a; i < b; i++) block.push(this.#entry(readLeafAt(core, i, readIdxRecord(idx, (i - a) * IDX_RECORD).offset)));
        });
        yield* block;
        if (failure) throw failure.error;
        a = b;
        await yieldToLoop();
        continue;
      }
      const lo = readIdxRecord(idx, 0).offset;
      const hiRec = readIdxRecord(idx, (b - a - 1) * IDX_RECORD);
      const path = segPath(core, k, 'leaves');
      const buf = core.fds.read(path, lo, hiRec.offset - lo + MAX_LEAF_RECORD);
      const block: StoredEntry[] = [];
      const failure = collect(() => {
        for (let i = a; i < b; i++) {
          const at = readIdxRecord(idx, (i - a) * IDX_RECORD).offset - lo;
          const r = parseLeafRecord(buf, at, i);
          if (!r.ok) throw new GatewayError('STORE_CORRUPT', `gateway: store: ${path}: entry ${i}: ${r.why}`);
          block.push(this.#entry({ ...r.record, data: r.record.data.slice() }));
        }
      });
      yield* block;
      if (failure) throw failure.error;
      a = b;
      await yieldToLoop();
    }
  }

  /**
   * One pack's entries with since ≤ receivedAt < until, oldest first; nothing for an unknown serial.
   * Throws STORE_CORRUPT, STORE_IO.
   */
  async *history(serial: string, window: TimeRange = {}): AsyncGenerator<StoredEntry> {
    this.#live();
    // Each batch (one segment) is located and read in one synchronous step: a pack-order rewrite of
    // that segment between the two would move its records.
    for await (const batch of packHistory(this.#core, serial, window, (k, entries) => readLeavesOf(this.#core, k, entries).map((r) => this.#entry(r)))) yield* batch;
  }

  /** The newest entry ≥ notBefore holding this pack's `counter`, or undefined (the ingest's duplicate check). */
  findCounter(serial: string, counter: number, notBefore?: number): Promise<number | undefined> {
    if (this.#closed) return Promise.reject(new GatewayError('STORE_CLOSED', 'gateway: store: findCounter after close()'));
    return findCounter(this.#core, serial, counter, notBefore);
  }

  pack(serial: string): PackSummary | undefined {
    return this.#core.packs.summary(serial);
  }
  packs(): PackSummary[] {
    return this.#core.packs.summaries();
  }

  /**
   * Records that the upstream ledger acknowledged every entry below `size`: pruning may delete
   * them. Persisted with the next state write (before any prune). Lower sizes are ignored.
   * Throws STORE_RANGE beyond the log.
   */
  markSynced(size: number): void {
    this.#checkSize(size, 'synced size');
    this.#core.syncedSize = Math.max(this.#core.syncedSize, size);
  }

  /**
   * Signs a checkpoint of the durable log with the gateway key (name = origin), makes it durable,
   * and returns it. When the log has not grown since the last checkpoint, returns that one unsigned
   * anew. `now` (ms) is when it counts as signed for the checkpoint policy. Throws STORE_CONFIG
   * (signer name ≠ origin), STORE_CLOSED, STORE_IO.
   */
  checkpoint(signer: NoteSigner, now = this.#clock()): Promise<StoredCheckpoint> {
    if (this.#closed || this.#core.readOnly) return Promise.reject(new GatewayError('STORE_CLOSED', 'gateway: store: checkpoint on a closed or read-only store'));
    if (signer.name !== this.origin) {
      return Promise.reject(new GatewayError('STORE_CONFIG', `gateway: store: checkpoint signer is ${JSON.stringify(signer.name)}, expected the origin ${JSON.stringify(this.origin)}`));
    }
    return this.#enqueue(async () => {
      const size = this.#core.size;
      const last = this.#latest?.cp;
      if (last && last.size === size) return last;
      invariant(!last || size > last.size, 'durable size below the latest checkpoint');
      const rootHash = treeHash(size, this.#core.reader);
      const note = signCheckpoint({ origin: this.origin, size, rootHash }, [signer]);
      const cp = parseStored(note, this.origin, 'new checkpoint');
      const added = await this.#cpWriter.write(cp, this.#core.layout.segmentOf(Math.max(0, size - 1)));
      this.#core.usage += added;
      this.#latest = { cp, at: now };
      this.#core.checkpointSize = size;
      this.#core.stats.checkpoints++;
      await this.#persistState();
      return cp;
    });
  }

  /** Signs a checkpoint if `policy` says one is due at `now` (ms, the store's clock by default); else undefined. Throws as checkpoint(). */
  async maybeCheckpoint(signer: NoteSigner, policy: CheckpointPolicy, now = this.#clock()): Promise<StoredCheckpoint | undefined> {
    const last = this.#latest && { size: this.#latest.cp.size, at: this.#latest.at };
    return checkpointDue(policy, this.size, last, now) ? this.checkpoint(signer, now) : undefined;
  }

  latestCheckpoint(): StoredCheckpoint | undefined {
    return this.#latest?.cp;
  }

  /** Every checkpoint still on disk (their segments not pruned), oldest first. Throws STORE_CORRUPT. */
  async *checkpoints(): AsyncGenerator<StoredCheckpoint> {
    for (let k = this.#core.firstSegment; k <= this.#core.layout.segmentOf(Math.max(0, this.size - 1)); k++) {
      yield* await readSegmentCheckpoints(this.#core.dir, k, this.origin);
    }
  }

  /** Waits for the background writes queued so far (pack files and state after a seal, prunes, checkpoints). */
  async flush(): Promise<void> {
    await this.#queue.idle();
  }

  /** Waits for queued appends and writes, snapshots the state and releases the lock. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#appender.close();
    if (!this.#core.readOnly) await this.#enqueue(() => this.#persistState()).catch(() => undefined);
    await this.#queue.idle();
    await this.#core.writer?.close();
    await this.#cpWriter.close();
    await this.#core.packs.close();
    this.#core.fds.closeAll();
    await this.#release();
  }

  /**
   * Rewrites sealable segments from `from` on in pack order, one write-queue task at a time (so
   * checkpoints and prunes queued meanwhile run in between). A failure is counted and the segment
   * stays in entry order (it is still read correctly); the next open tries again.
   */
  #sealBacklog(from: number): void {
    const core = this.#core;
    let k = from;
    while (k < core.firstSegment || (core.layout.start(k + 2) <= core.size && core.sealed.has(k))) k++;
    if (!sealable(core, k) || this.#sealing.has(k)) return;
    this.#sealing.add(k);
    this.#enqueue(() => sealSegment(core, k))
      .then(
        () => {
          this.#sealing.delete(k);
          if (!this.#closed) this.#sealBacklog(k + 1);
        },
        () => {
          this.#sealing.delete(k);
          core.stats.ioErrors++;
        },
      );
  }

  #entry(r: { index: number; data: Uint8Array; receivedAt: number; counter: number; packId: number }): StoredEntry {
    const serial = this.#core.packs.serialOf(r.packId);
    if (serial === undefined) throw new GatewayError('STORE_CORRUPT', `gateway: store: entry ${r.index} names unknown pack id ${r.packId}`);
    return new Entry(r.index, r.data, r.receivedAt, r.counter, serial);
  }

  #live(): void {
    if (this.#closed) throw new GatewayError('STORE_CLOSED', 'gateway: store: read after close()');
  }

  #checkSize(size: number, what: string): void {
    if (!Number.isSafeInteger(size) || size < 0 || size > this.size) throw range(`${what} ${String(size)}: expected an integer in [0, ${this.size}]`);
  }

  #enqueue<T>(task: () => Promise<T>): Promise<T> {
    return this.#core.enqueue(task);
  }

  /** Writes state.json now; call only from inside the write queue. */
  async #persistState(): Promise<void> {
    const core = this.#core;
    const text = encodeState({ size: core.size, syncedSize: core.syncedSize, packs: core.packs.snapshotPacks() });
    const delta = await writeAtomic(join(core.dir, FILES.state), text);
    core.usage += delta;
  }
}
