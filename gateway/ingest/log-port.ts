/**
 * The ingest pipeline's view of the durable log: the `IngestLog` contract, and `logPort`, which
 * implements it over gateway/store's LogStore: group-committed appends that resolve once fsynced, the per-pack counter index for the
 * duplicate check of counters that left the dedupe window, and sequential reads of the entries after
 * the ingest snapshot for crash recovery. Keeping the pipeline behind this small interface lets its
 * unit tests run on an in-memory log with the same contract (STYLE.md: storage behind an interface).
 */
import { decodeLeaf, type LogLeaf } from '../../protocol/index.js';
import { isGatewayError } from '../errors.js';
import type { EncodedLeaf } from '../store/appender.js';
import type { LogStore } from '../store/log-store.js';
import { frameIdentity, type FrameIdentity } from './dedupe.js';

/** One frame to store, with what the log's per-pack index needs. */
export interface IngestEntry {
  readonly leaf: LogLeaf;
  readonly serial: string;
  readonly counter: number;
  /** encodeLeaf(leaf) and its leaf hash, built by the verification worker (LogStore appends them as they are). */
  readonly encoded?: EncodedLeaf;
}

/**
 * What the pipeline needs of the log (gateway/store's LogStore through `logPort` below).
 * Contract: `append` makes the entries durable (fsync) in the given order and resolves with the index
 * of the first, or rejects with a GatewayError STORE_* having stored none of them durably; appends
 * resolve in call order. `frameIdentity` returns the identity (dedupe.ts frameIdentity: the signed
 * payload) of the frame the log holds for the pack's counter, or undefined. `leaves` yields the leaf data of entries [from, to) in order.
 */
export interface IngestLog {
  readonly size: number;
  append(entries: readonly IngestEntry[]): Promise<number>;
  frameIdentity(serial: string, counter: number): Promise<FrameIdentity | undefined>;
  leaves(from: number, to: number): AsyncIterable<Uint8Array>;
}

/**
 * Wraps `store`. `append` rejects as LogStore.append (STORE_QUOTA, STORE_IO, STORE_INPUT,
 * STORE_CLOSED); `frameIdentity` treats an entry pruned meanwhile as absent and rejects on other store
 * errors; `leaves` starts at the first entry still on disk when `from` was pruned (the ledger holds
 * those; their counters are then known to dedupe only through its snapshot).
 */
export function logPort(store: LogStore): IngestLog {
  return {
    get size() {
      return store.size;
    },
    async append(entries: readonly IngestEntry[]): Promise<number> {
      const r = await store.append(entries);
      return r.entries[0]?.index ?? r.size - entries.length;
    },
    async frameIdentity(serial: string, counter: number): Promise<FrameIdentity | undefined> {
      const index = await store.findCounter(serial, counter);
      if (index === undefined) return undefined;
      try {
        return frameIdentity(decodeLeaf(store.get(index).data).frame);
      } catch (e) {
        if (isGatewayError(e, 'STORE_RANGE')) return undefined;
        throw e;
      }
    },
    async *leaves(from: number, to: number): AsyncIterable<Uint8Array> {
      for await (const e of store.entries(Math.max(from, store.firstIndex), to)) yield e.data;
    },
  };
}
