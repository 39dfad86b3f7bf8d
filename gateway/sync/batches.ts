/**
 * Cuts a run of the durable log into upload bodies (protocol encodeUploadRequest, docs/protocol.md
 * §10.2): entries [from, to) in batches of at most `maxEntries` leaves and about `maxBytes` of body,
 * each carrying the certificate chains its leaves name (looked up in the CertStore by the leaf's
 * certSha256, deduplicated within the batch, at most MAX_UPLOAD_CERTS), and the last batch also
 * the signed checkpoint of size `to` with the RFC 9162 consistency proof from the size the ledger
 * last accepted. A leaf whose chain the gateway no longer has is still sent (the ledger stores it
 * and marks the frame unverified: the log's tree must stay whole) and counted. Leaves are read
 * sequentially from the segment files (LogStore.entries), so memory stays at one batch per
 * read-ahead slot whatever the backlog.
 */
import { decodeLeaf, encodeUploadRequest, MAX_NOTE_SIZE, MAX_PROOF_LENGTH, MAX_UPLOAD_BYTES, MAX_UPLOAD_CERTS, MAX_UPLOAD_ENTRIES, sha256, toHex } from '../../protocol/index.js';
import type { LogStore } from '../store/log-store.js';
import type { StoredCheckpoint } from '../store/checkpoints.js';

/** The part of the log store the sync client reads and marks. */
export type SyncStore = Pick<LogStore, 'origin' | 'size' | 'firstIndex' | 'syncedSize' | 'entries' | 'get' | 'root' | 'consistencyProof' | 'latestCheckpoint' | 'markSynced'>;

/** The chain (device certificate first) of a certSha256, or undefined (CertStore.chain). */
export type ChainLookup = (certSha256: Uint8Array) => readonly Uint8Array[] | undefined;

export interface BatchPlan {
  readonly from: number;
  readonly to: number;
  /** The checkpoint of size `to` sent with the last batch. */
  readonly checkpoint: StoredCheckpoint;
  /** The ledger's accepted size: the consistency proof starts there. */
  readonly proofFrom: number;
  readonly maxEntries: number;
  readonly maxBytes: number;
}

export interface Batch {
  readonly from: number;
  readonly count: number;
  readonly body: Uint8Array;
  /** True for the batch carrying the checkpoint. */
  readonly final: boolean;
  /** Leaves whose certificate chain is not in the certificate store (sent anyway). */
  readonly missingChains: number;
  /** Leaves that do not decode (sent anyway: the ledger judges and keeps them). */
  readonly badLeaves: number;
}

/** CBOR overhead allowance per byte string and for the map, origin and checkpoint parts. */
const ITEM_OVERHEAD = 5;
const FIXED_OVERHEAD = 512 + MAX_NOTE_SIZE + MAX_PROOF_LENGTH * (32 + 2);

/** Clamps a configured batch size to what the protocol allows. */
export function clampBatchEntries(n: number): number {
  return Math.max(1, Math.min(Math.floor(n), MAX_UPLOAD_ENTRIES));
}

/** Clamps a configured batch body size to the protocol's cap. */
export function clampBatchBytes(n: number): number {
  return Math.max(FIXED_OVERHEAD + 64 * 1024, Math.min(Math.floor(n), MAX_UPLOAD_BYTES));
}

/**
 * The batches of `plan`, in order. An empty run (from = to) yields one batch with no entries and
 * the checkpoint. Throws STORE_RANGE (a pruned entry), STORE_CORRUPT, STORE_IO from the store.
 */
export async function* uploadBatches(store: SyncStore, chains: ChainLookup, plan: BatchPlan): AsyncGenerator<Batch> {
  const maxEntries = clampBatchEntries(plan.maxEntries);
  const budget = clampBatchBytes(plan.maxBytes) - FIXED_OVERHEAD;
  /** Per device certificate: its chain's certificates with their hashes, or null when the store lacks it. */
  const chainCache = new Map<string, { readonly key: string; readonly der: Uint8Array }[] | null>();
  const proof = plan.proofFrom === plan.to ? [] : store.consistencyProof(plan.proofFrom, plan.to);
  let entries: Uint8Array[] = [];
  let certs: Uint8Array[] = [];
  let certSet = new Set<string>();
  let bytes = 0;
  let from = plan.from;
  let missingChains = 0;
  let badLeaves = 0;

  const cut = (final: boolean): Batch => {
    const body = encodeUploadRequest({
      origin: store.origin,
      from,
      entries,
      certs,
      ...(final ? { checkpoint: plan.checkpoint.note, proof, proofFrom: plan.proofFrom } : {}),
    });
    const b: Batch = { from, count: entries.length, body, final, missingChains, badLeaves };
    from += entries.length;
    entries = [];
    certs = [];
    certSet = new Set();
    bytes = 0;
    missingChains = 0;
    badLeaves = 0;
    return b;
  };

  /** undefined: the leaf does not decode; null: no chain stored for it. */
  const chainOf = (data: Uint8Array): { key: string; der: Uint8Array }[] | null | undefined => {
    let sha: Uint8Array;
    try {
      sha = decodeLeaf(data).certSha256;
    } catch {
      return undefined;
    }
    const key = toHex(sha);
    let chain = chainCache.get(key);
    if (chain === undefined) {
      chain = chains(sha)?.map((der) => ({ key: toHex(sha256(der)), der })) ?? null;
      chainCache.set(key, chain);
    }
    return chain;
  };

  if (plan.from < plan.to) {
    for await (const e of store.entries(plan.from, plan.to)) {
      const chain = chainOf(e.data);
      let fresh = (chain ?? []).filter((c) => !certSet.has(c.key));
      const chainBytes = fresh.reduce((a, c) => a + c.der.length + ITEM_OVERHEAD, 0);
      const full = entries.length >= maxEntries || (entries.length > 0 && (bytes + e.data.length + ITEM_OVERHEAD + chainBytes > budget || certs.length + fresh.length > MAX_UPLOAD_CERTS));
      if (full) {
        yield cut(false);
        fresh = chain ?? [];
      }
      entries.push(e.data);
      bytes += e.data.length + ITEM_OVERHEAD;
      if (chain === undefined) badLeaves++;
      else if (chain === null) missingChains++;
      for (const c of fresh) {
        certSet.add(c.key);
        certs.push(c.der);
        bytes += c.der.length + ITEM_OVERHEAD;
      }
    }
  }
  yield cut(true);
}
