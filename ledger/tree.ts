/**
 * Each gateway's Merkle tree as the ledger keeps it (docs/ledger.md "Storage"): Go-tlog stored
 * hashes (protocol storedHashes, RFC 9162 trees) in the `hashes` table, one row per stored hash.
 * protocol's tree code reads hashes through a synchronous HashReader, so a computation runs twice:
 * first against a recording reader that notes the indexes it needs (and answers with placeholder
 * hashes), then — after one `WHERE n = ANY($1)` query fetched them — against a Map-backed reader.
 * Appending leaves needs only the right frontier of the tree (the stored subtrees of the current
 * size), which the same dry run finds.
 */
import { HASH_SIZE, ProtocolError, storedHashCount, storedHashesForLeafHash, type HashReader } from '../protocol/index.js';
import { invariant } from './errors.js';
import type { Queryable } from './db/driver.js';

const PLACEHOLDER = new Uint8Array(HASH_SIZE);

/** A HashReader over a Map of stored hashes, recording the indexes it does not have. */
export class MapReader implements HashReader {
  readonly missing = new Set<number>();
  recording = false;

  constructor(readonly hashes: Map<number, Uint8Array> = new Map()) {}

  readHashes(indexes: readonly number[]): Uint8Array[] {
    return indexes.map((i) => {
      const h = this.hashes.get(i);
      if (h !== undefined) return h;
      if (this.recording) {
        this.missing.add(i);
        return PLACEHOLDER;
      }
      throw new ProtocolError('MERKLE_INDEX', `ledger: stored hash ${i} is not held`);
    });
  }
}

/** Loads the given stored hashes of a gateway's tree into `reader`. A hash that is not stored is left out. */
export async function loadHashes(q: Queryable, gatewayId: number, reader: MapReader, indexes: Iterable<number>): Promise<void> {
  const need = [...indexes].filter((i) => !reader.hashes.has(i));
  if (need.length === 0) return;
  const rows = await q.query<{ n: number; h: Uint8Array }>('SELECT n, h FROM hashes WHERE gateway_id = $1 AND n = ANY($2::bigint[])', [gatewayId, need]);
  for (const r of rows) reader.hashes.set(r.n, r.h);
}

/**
 * Runs `fn` (protocol tree code reading through `reader`) with every hash it needs loaded: a
 * recording dry run, one query for what is missing, then the real run (repeated if the first run's
 * answers changed which hashes the computation asks for — the index lists of protocol's functions
 * depend only on sizes, so one round suffices in practice).
 */
export async function withHashes<T>(q: Queryable, gatewayId: number, reader: MapReader, fn: () => T): Promise<T> {
  for (let round = 0; round < 4; round++) {
    reader.recording = true;
    reader.missing.clear();
    try {
      fn();
    } finally {
      reader.recording = false;
    }
    if (reader.missing.size === 0) return fn();
    await loadHashes(q, gatewayId, reader, reader.missing);
  }
  return fn();
}

/**
 * Appends leaves (by leaf hash) to a tree of `size` leaves: returns the new stored hashes as
 * [index, hash] pairs in storage order. `reader` must hold the frontier of `size` (see withHashes);
 * new hashes are added to it as they are computed.
 */
export function appendLeaves(size: number, leafHashes: readonly Uint8Array[], reader: MapReader): [number, Uint8Array][] {
  const out: [number, Uint8Array][] = [];
  let next = storedHashCount(size);
  for (let k = 0; k < leafHashes.length; k++) {
    const leaf = leafHashes[k];
    invariant(leaf !== undefined, 'appendLeaves: leaf hash present');
    for (const h of storedHashesForLeafHash(size + k, leaf, reader)) {
      reader.hashes.set(next, h);
      out.push([next, h]);
      next++;
    }
  }
  return out;
}

/**
 * `parts` concatenated into one Buffer (a binary parameter for node-postgres, raw bytes on the wire)
 * with each part's [start, end) offsets, for `substring($n::bytea FROM start + 1 FOR end - start)`.
 */
export function concatBytes(parts: readonly Uint8Array[]): { bytes: Buffer; starts: number[]; ends: number[] } {
  const bytes = Buffer.concat(parts);
  const starts: number[] = [];
  const ends: number[] = [];
  let at = 0;
  for (const p of parts) {
    starts.push(at);
    at += p.length;
    ends.push(at);
  }
  return { bytes, starts, ends };
}

/**
 * Inserts new stored hashes with one multi-row statement: with `binary` (node-postgres) the hashes
 * travel as one binary parameter, 32 bytes each; otherwise (PGlite) as a bytea[].
 */
export async function insertHashes(q: Queryable, gatewayId: number, hashes: readonly [number, Uint8Array][], binary = true): Promise<void> {
  if (hashes.length === 0) return;
  if (!binary) {
    await q.query('INSERT INTO hashes (gateway_id, n, h) SELECT $1, * FROM unnest($2::bigint[], $3::bytea[])', [gatewayId, hashes.map((x) => x[0]), hashes.map((x) => x[1])]);
    return;
  }
  await q.query(
    `INSERT INTO hashes (gateway_id, n, h)
     SELECT $1, u.n, substring($3::bytea FROM (u.k::int - 1) * ${HASH_SIZE} + 1 FOR ${HASH_SIZE}) FROM unnest($2::bigint[]) WITH ORDINALITY AS u(n, k)`,
    [gatewayId, hashes.map((x) => x[0]), concatBytes(hashes.map((x) => x[1])).bytes],
  );
}
