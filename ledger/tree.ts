/**
 * Each gateway's Merkle tree as the ledger keeps it (docs/ledger.md "Storage"): Go-tlog stored
 * hashes (protocol storedHashes, RFC 9162 trees) in the `hash_blocks` table, HASH_BLOCK consecutive
 * stored hashes to a row.
 * protocol's tree code reads hashes through a synchronous HashReader, so a computation runs twice:
 * first against a recording reader that notes the indexes it needs (and answers with placeholder
 * hashes), then — after one `WHERE block = ANY($1)` query fetched the blocks holding them —
 * against a Map-backed reader.
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

/**
 * Stored hashes per `hash_blocks` row (migration 3): row `block` of a gateway holds its stored hashes
 * [HASH_BLOCK·block, HASH_BLOCK·block + HASH_BLOCK) concatenated, the last row of a tree partly
 * filled. Stored hashes are only ever appended, densely and in index order (appendLeaves).
 */
export const HASH_BLOCK = 32;

/** Loads the given stored hashes of a gateway's tree into `reader`. A hash that is not stored is left out. */
export async function loadHashes(q: Queryable, gatewayId: number, reader: MapReader, indexes: Iterable<number>): Promise<void> {
  const blocks = new Set<number>();
  for (const i of indexes) if (!reader.hashes.has(i)) blocks.add(Math.floor(i / HASH_BLOCK));
  if (blocks.size === 0) return;
  const rows = await q.query<{ block: number; h: Uint8Array }>('SELECT block, h FROM hash_blocks WHERE gateway_id = $1 AND block = ANY($2::bigint[])', [gatewayId, [...blocks]]);
  for (const r of rows) {
    const held = Math.floor(r.h.length / HASH_SIZE);
    for (let k = 0; k < held; k++) {
      const i = r.block * HASH_BLOCK + k;
      if (!reader.hashes.has(i)) reader.hashes.set(i, r.h.subarray(k * HASH_SIZE, k * HASH_SIZE + HASH_SIZE));
    }
  }
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
 * Appends new stored hashes — consecutive indexes from storedHashCount(size) on, as appendLeaves
 * returns them — to a gateway's hash blocks with one statement: the partly filled last block held
 * is extended (`h || new`, only if it holds exactly the hashes before the first new one), the
 * others inserted. With `binary` (node-postgres) the hashes travel as one binary parameter cut
 * apart in SQL; otherwise (PGlite) as a bytea[] of one element per block.
 */
export async function insertHashes(q: Queryable, gatewayId: number, hashes: readonly [number, Uint8Array][], binary = true): Promise<void> {
  const first = hashes[0]?.[0];
  if (first === undefined) return;
  const all = concatBytes(hashes.map(([n, h], k) => {
    invariant(n === first + k && h.length === HASH_SIZE, 'insertHashes: consecutive stored hashes');
    return h;
  })).bytes;
  const blocks: number[] = [];
  const starts: number[] = [];
  const ends: number[] = [];
  const end = first + hashes.length;
  for (let b = Math.floor(first / HASH_BLOCK); b * HASH_BLOCK < end; b++) {
    blocks.push(b);
    starts.push((Math.max(first, b * HASH_BLOCK) - first) * HASH_SIZE);
    ends.push((Math.min(end, (b + 1) * HASH_BLOCK) - first) * HASH_SIZE);
  }
  const heldBefore = (first % HASH_BLOCK) * HASH_SIZE; // bytes the first block must already hold
  const write = binary
    ? `SELECT $1::int, u.b, substring($3::bytea FROM u.a + 1 FOR u.e - u.a) FROM unnest($2::bigint[], $4::int[], $5::int[]) AS u(b, a, e)`
    : `SELECT $1::int, u.b, u.h FROM unnest($2::bigint[], $3::bytea[]) AS u(b, h)`;
  const params = binary
    ? [gatewayId, blocks, all, starts, ends, heldBefore]
    : [gatewayId, blocks, blocks.map((_, k) => all.subarray(starts[k], ends[k])), heldBefore];
  const rows = await q.query<{ n: number }>(
    `WITH w AS (
       INSERT INTO hash_blocks AS t (gateway_id, block, h) ${write}
       ON CONFLICT (gateway_id, block) DO UPDATE SET h = t.h || excluded.h WHERE length(t.h) = $${binary ? 6 : 4}
       RETURNING 1)
     SELECT count(*)::int AS n FROM w`,
    params,
  );
  invariant(rows[0]?.n === blocks.length, `insertHashes: ${blocks.length} hash blocks written, ${String(rows[0]?.n)} took the write (stored hashes out of step with the tree)`);
}
