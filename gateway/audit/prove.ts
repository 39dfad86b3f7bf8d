/**
 * `gateway prove PACK COUNTER`: the offline proof bundle of one frame (docs/protocol.md §9) from
 * the local log — the leaf, the device chain from the certificate store, the RFC 9162 inclusion
 * proof against the latest signed checkpoint, and that checkpoint verbatim. A third party checks
 * it with `gateway verify-proof` (or any §9.1 verifier) trusting only the factory roots and the
 * gateway's verifier key. When the upstream ledger has cosigned a checkpoint that covers the
 * entry (the sync client keeps the latest, gateway/sync/cosigned.ts), the bundle uses that one, so
 * it also proves the ledger witnessed the tree; otherwise the latest local checkpoint. A frame not
 * yet covered by a checkpoint cannot be proven: the next checkpoint (every N entries or T seconds)
 * covers it.
 */
import { decodeLeaf, encodeProofBundle } from '../../protocol/index.js';
import type { CertStore } from '../certs.js';
import { GatewayError } from '../errors.js';
import type { LogStore } from '../store/log-store.js';
import type { CosignedCheckpoint } from '../sync/cosigned.js';

export interface ProvedEntry {
  readonly bundle: string;
  readonly index: number;
  readonly checkpointSize: number;
  /** True when the bundle's checkpoint carries the ledger's cosignature. */
  readonly witnessed: boolean;
}

/**
 * Builds the bundle of `serial`'s frame `counter`, against `cosigned` (the ledger-cosigned
 * checkpoint, already checked by readCosigned) when it covers the entry. Throws NOT_FOUND (no such entry), NOT_COVERED
 * (no checkpoint covers it yet, or its chain is not in the certificate store), CERT_STORE,
 * STORE_* from the store.
 */
export async function proveFrame(store: LogStore, certs: CertStore, serial: string, counter: number, cosigned?: CosignedCheckpoint): Promise<ProvedEntry> {
  const index = await store.findCounter(serial, counter);
  if (index === undefined) throw new GatewayError('NOT_FOUND', `gateway: no entry of pack ${serial} with counter ${counter} in the log ${store.origin}`);
  const entry = store.get(index);
  const witnessed = cosigned !== undefined && cosigned.size > index && cosigned.size <= store.size;
  const cp = witnessed ? cosigned : store.latestCheckpoint();
  if (cp === undefined || cp.size <= index) {
    throw new GatewayError('NOT_COVERED', `gateway: entry ${index} (${serial} #${counter}) is not yet covered by a signed checkpoint (latest: ${cp?.size ?? 'none'}); try again after the next one`);
  }
  const chain = certs.chain(decodeLeaf(entry.data).certSha256);
  if (chain === undefined) throw new GatewayError('NOT_COVERED', `gateway: entry ${index}: the certificate chain it names is not in the certificate store ${certs.dir}`);
  const bundle = encodeProofBundle({ index, leaf: entry.data, chain, proof: store.inclusionProof(index, cp.size), checkpoint: cp.note });
  return { bundle, index, checkpointSize: cp.size, witnessed };
}
