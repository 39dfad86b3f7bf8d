/**
 * The append path (group commit): `append` validates and encodes leaves at once (bad input is
 * rejected with STORE_INPUT before it is queued), a single loop takes everything queued up to a
 * cap, clamps receivedAt so it never goes back (history's time search needs entry order = time
 * order; a gateway clock stepping back is recorded as the last time seen), checks the quota
 * (pruning synced segments if needed, else STORE_QUOTA), registers new pack serials, splits the
 * group at segment boundaries and commits each part. An append resolves only when all its entries
 * are durable; only then may the ingest acknowledge them to devices.
 */
import { HASH_SIZE, MAX_LEAF_BYTES, encodeLeaf, isProtocolError, type LogLeaf } from '../../protocol/index.js';
import { GatewayError, invariant } from '../errors.js';
import { REGISTRY_OVERHEAD } from './format.js';
import { validSerial } from './packs.js';
import { prunableSegment, pruneOldest, type PruneHooks } from './quota.js';
import { entryBytes, type PreparedEntry } from './writer.js';
import type { StoreCore } from './core.js';

/**
 * A leaf already encoded by the caller (the ingest's verification workers build it beside the
 * signature check, off the main thread): `data` must be protocol encodeLeaf(leaf) and `leafHash`
 * the RFC 9162 leaf hash of `data`. The store writes and hashes into the tree exactly these; a
 * mismatch is a bug in the caller that `gateway verify` reports (it re-encodes nothing but re-hashes
 * every leaf and decodes it).
 */
export interface EncodedLeaf {
  readonly data: Uint8Array;
  readonly leafHash: Uint8Array;
}

/** One accepted frame to log: the leaf fields plus the pack serial and counter the ingest verified. */
export interface LeafInput {
  /** receivedAt may be raised to the last entry's (never lowered); the leaf is then encoded anew. */
  readonly leaf: LogLeaf;
  readonly serial: string;
  readonly counter: number;
  /** The leaf's encoding and leaf hash, when the caller has them; else the store encodes `leaf`. */
  readonly encoded?: EncodedLeaf;
}

export interface AppendedEntry {
  readonly index: number;
  readonly leafHash: Uint8Array;
  /** receivedAt as stored in the leaf (after clamping). */
  readonly receivedAt: number;
}

export interface AppendResult {
  readonly entries: readonly AppendedEntry[];
  /** Durable size of the log after the commit that made these entries durable. */
  readonly size: number;
}

/** Largest single append call; larger ones are STORE_INPUT (split them). */
export const MAX_APPEND_ENTRIES = 65_536;

interface Item {
  readonly leaf: LogLeaf;
  readonly data: Uint8Array;
  readonly leafHash: Uint8Array | undefined;
  readonly serial: string;
  readonly counter: number;
}

interface Pending {
  readonly items: readonly Item[];
  readonly resolve: (r: AppendResult) => void;
  readonly reject: (e: unknown) => void;
}

export interface AppenderHooks extends PruneHooks {
  /** Background work after segment k was sealed (pack file, state snapshot). */
  sealed(k: number): void;
}

const input = (why: string, cause?: unknown): GatewayError => new GatewayError('STORE_INPUT', `gateway: store: append: ${why}`, cause === undefined ? undefined : { cause });

export class Appender {
  #queue: Pending[] = [];
  #running = false;
  #done: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(
    private readonly core: StoreCore,
    private readonly hooks: AppenderHooks,
    private readonly maxBatchEntries: number,
  ) {}

  /** See LogStore.append. */
  append(items: readonly LeafInput[]): Promise<AppendResult> {
    const core = this.core;
    core.stats.appendCalls++;
    if (this.#closed || !core.writer) return Promise.reject(new GatewayError('STORE_CLOSED', `gateway: store: append on a store that is ${this.#closed ? 'closed' : 'read-only'}`));
    let prepared: Item[];
    try {
      const list: readonly LeafInput[] = items;
      if (!Array.isArray(list) || list.length > MAX_APPEND_ENTRIES) throw input(`expected an array of at most ${MAX_APPEND_ENTRIES} leaves`);
      prepared = list.map((it: LeafInput, i: number): Item => {
        if (!validSerial(it.serial)) throw input(`item ${i}: serial must match the pack serial pattern (1-64 of A-Z a-z 0-9 . -)`);
        if (!Number.isSafeInteger(it.counter) || it.counter < 0) throw input(`item ${i}: counter must be a non-negative safe integer`);
        const enc = it.encoded;
        if (enc !== undefined) {
          if (!(enc.data instanceof Uint8Array) || enc.data.length < 1 || enc.data.length > MAX_LEAF_BYTES || !(enc.leafHash instanceof Uint8Array) || enc.leafHash.length !== HASH_SIZE) {
            throw input(`item ${i}: encoded leaf must be 1..${MAX_LEAF_BYTES} bytes with a ${HASH_SIZE}-byte leaf hash`);
          }
          return { leaf: it.leaf, data: enc.data, leafHash: enc.leafHash, serial: it.serial, counter: it.counter };
        }
        try {
          return { leaf: it.leaf, data: encodeLeaf(it.leaf), leafHash: undefined, serial: it.serial, counter: it.counter };
        } catch (e) {
          if (isProtocolError(e)) throw input(`item ${i}: ${e.message}`, e);
          throw e;
        }
      });
    } catch (e) {
      core.stats.inputRejects++;
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    if (prepared.length === 0) return Promise.resolve({ entries: [], size: core.size });
    return new Promise((resolve, reject) => {
      this.#queue.push({ items: prepared, resolve, reject });
      if (!this.#running) {
        this.#running = true;
        this.#done = this.#run();
      }
    });
  }

  /** Stops accepting appends and waits for queued ones to settle. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#done;
  }

  async #run(): Promise<void> {
    // The flag drops in the same synchronous step that finds the queue empty, so an append queued
    // right after the last batch settles finds the loop either still looping or stopped.
    try {
      while (this.#queue.length > 0) {
        const batch: Pending[] = [];
        let n = 0;
        while (this.#queue.length > 0 && (batch.length === 0 || n + (this.#queue[0]?.items.length ?? 0) <= this.maxBatchEntries)) {
          const p = this.#queue.shift() as Pending;
          batch.push(p);
          n += p.items.length;
        }
        await this.#process(batch).catch((e: unknown) => {
          for (const p of batch) p.reject(e); // only reached for a bug: #process settles every call itself
        });
      }
    } finally {
      this.#running = false;
    }
  }

  async #process(batch: Pending[]): Promise<void> {
    const core = this.core;
    const writer = core.writer;
    invariant(writer !== undefined, 'appender without a writer');
    // 1. Clamp times, size each call, and admit calls while they fit the quota (pruning if needed).
    const admitted: { p: Pending; entries: PreparedEntry[]; serials: string[] }[] = [];
    let index = core.size;
    let last = core.lastReceivedAt;
    let need = 0;
    const newSerials = new Set<string>();
    for (let c = 0; c < batch.length; c++) {
      const p = batch[c] as Pending;
      const entries: PreparedEntry[] = [];
      let bytes = 0;
      let t = last;
      for (const it of p.items) {
        const receivedAt = Math.max(it.leaf.receivedAt, t);
        // A clamped time changes the leaf: encoded anew, its hash computed by the writer.
        const same = receivedAt === it.leaf.receivedAt;
        const data = same ? it.data : encodeLeaf({ ...it.leaf, receivedAt });
        entries.push({ data, leafHash: same ? it.leafHash : undefined, receivedAt, counter: it.counter, packId: -1 });
        bytes += entryBytes(index + entries.length - 1, data.length);
        if (core.packs.idOf(it.serial) === undefined && !newSerials.has(it.serial)) bytes += REGISTRY_OVERHEAD + Buffer.byteLength(it.serial);
        t = receivedAt;
      }
      try {
        // Pruning runs in the store's write queue, serialised with checkpoint and state writes.
        while (core.usage + need + bytes > core.quotaBytes && prunableSegment(core) !== undefined) await core.enqueue(() => pruneOldest(core, this.hooks));
      } catch (e) {
        core.stats.ioErrors++;
        this.#rejectFrom(batch, c, e);
        break;
      }
      if (core.usage + need + bytes > core.quotaBytes) {
        core.stats.quotaRejects += batch.length - c;
        this.#rejectFrom(batch, c, new GatewayError('STORE_QUOTA', `gateway: store: appending ${p.items.length} entries needs ${bytes} bytes; ${core.usage} of the ${core.quotaBytes}-byte quota are used and no segment below both the ledger-acknowledged size ${core.syncedSize} and the latest checkpoint (${core.checkpointSize}) can be pruned`));
        break;
      }
      for (const it of p.items) if (core.packs.idOf(it.serial) === undefined) newSerials.add(it.serial);
      admitted.push({ p, entries, serials: p.items.map((it) => it.serial) });
      need += bytes;
      index += entries.length;
      last = t;
    }
    if (admitted.length === 0) return;

    // 2. New packs get ids, durably, before any entry names them.
    try {
      const added = await core.packs.register([...newSerials]);
      core.usage += added; // not `+= await`: that would read usage before the await and lose concurrent updates
    } catch (e) {
      core.stats.ioErrors++;
      for (const a of admitted) a.p.reject(new GatewayError('STORE_IO', 'gateway: store: writing packs.registry failed', { cause: e }));
      return;
    }
    const all: PreparedEntry[] = [];
    for (const a of admitted) {
      a.entries.forEach((e, i) => {
        all.push({ ...e, packId: core.packs.idOf(a.serials[i] as string) as number });
      });
    }

    // 3. Commit, split at segment boundaries; each part is durable before the next starts.
    const hashes: Uint8Array[] = [];
    let failure: unknown;
    for (let from = 0; from < all.length; ) {
      const start = writer.size;
      const room = core.layout.start(core.layout.segmentOf(start) + 1) - start;
      const part = all.slice(from, from + room);
      try {
        const r = await writer.commit(part);
        for (const h of r.leafHashes) hashes.push(h); // not push(...): a part may hold 65,536
        core.usage += r.bytes;
      } catch (e) {
        core.stats.ioErrors++;
        failure = e;
        break;
      }
      part.forEach((e, i) => {
        core.packs.apply(e.packId, start + i, e.counter, e.receivedAt);
      });
      core.size = writer.size;
      core.lastReceivedAt = (part.at(-1) as PreparedEntry).receivedAt;
      core.stats.commits++;
      core.stats.appendedEntries += part.length;
      if (core.size === core.layout.start(core.layout.segmentOf(start) + 1)) this.hooks.sealed(core.layout.segmentOf(start));
      from += part.length;
    }

    // 4. Settle: a call resolves only if every one of its entries is durable.
    let at = 0;
    let first = index - all.length;
    for (const a of admitted) {
      const n = a.entries.length;
      if (at + n <= hashes.length) {
        a.p.resolve({ entries: a.entries.map((e, i) => ({ index: first + i, leafHash: hashes[at + i] as Uint8Array, receivedAt: e.receivedAt })), size: core.size });
      } else {
        a.p.reject(failure);
      }
      at += n;
      first += n;
    }
  }

  #rejectFrom(batch: readonly Pending[], c: number, e: unknown): void {
    for (const p of batch.slice(c)) p.reject(e);
  }
}
