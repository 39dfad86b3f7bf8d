/**
 * Exactly-once frames across gateways (docs/ledger.md "Storage"): each verified frame is held once
 * in `frames`, keyed by (serial, counter), with the first sighting (gateway, log index, receive
 * time, source) and its decoded display columns, so history never decodes COSE at query time. The
 * same frame (same signed payload) in another leaf — another gateway, or the same gateway again —
 * adds a sighting only. A different payload under a (serial, counter) already held is a device
 * equivocation: the leaf gets verdict FRAME_EQUIVOCATION and evidence is kept.
 *
 * Concurrency: rows sorted by (serial, counter) so two transactions (two gateways carrying the same
 * frames, on two ledger processes) lock rows in the same order; frames not held yet go in with one
 * plain multi-row INSERT, held ones (and all of them, should a concurrent upload have inserted one
 * meanwhile) with one INSERT … ON CONFLICT, which makes the loser add a sighting instead of a
 * duplicate (writeFrames). Per-pack summaries (packs, pack_gateways) are upserted.
 *
 * Parameters are built for the main thread's sake (a catch-up stores thousands of frames per
 * upload): numbers go as one array literal string each (pg would quote and escape every element),
 * repeated texts and certificate hashes as a short list of distinct values plus 1-based indexes,
 * and the per-frame outcome comes back as one string (one character per frame) instead of rows.
 */
import { bytesEqual, toHex } from '../protocol/index.js';
import type { Queryable } from './db/driver.js';
import { concatBytes } from './tree.js';
import { frameValue, payloadHash, type JudgedLeaf } from './judge.js';
import type { GatewayRecord } from './types.js';
import type { EvidenceDraft } from './upload.js';

interface Candidate {
  readonly j: JudgedLeaf;
  readonly serial: string;
  readonly counter: number;
  readonly idx: number;
  sightings: number;
}

export interface FramesOutcome {
  readonly equivocations: EvidenceDraft[];
  /** Frames held for the first time. */
  readonly stored: number;
  /** Leaves that were another sighting of a held frame. */
  readonly seenAgain: number;
}

/**
 * A PostgreSQL array literal of integers (`{1,2,NULL}`), for an `$n::bigint[]` / `$n::int[]`
 * parameter: one string built here instead of pg's per-element quoting and escaping.
 */
export function intList(n: number, at: (i: number) => number | null): string {
  let s = '{';
  for (let i = 0; i < n; i++) {
    const v = at(i);
    s += (i === 0 ? '' : ',') + (v === null ? 'NULL' : String(v));
  }
  return s + '}';
}

/**
 * Repeated values as their distinct values and a 1-based index literal per item (0 for null, which
 * `($k::text[])[0]` turns into NULL): `keyOf` names a value, `valueOf` gives what to send.
 */
export function indexed<T>(n: number, keyOf: (i: number) => string | null, valueOf: (i: number) => T): { distinct: T[]; index: string } {
  const seen = new Map<string, number>();
  const distinct: T[] = [];
  return {
    distinct,
    index: intList(n, (i) => {
      const key = keyOf(i);
      if (key === null) return 0;
      let k = seen.get(key);
      if (k === undefined) {
        distinct.push(valueOf(i));
        k = distinct.length;
        seen.set(key, k);
      }
      return k;
    }),
  };
}

function equivocation(j: JudgedLeaf, idx: number, gw: GatewayRecord, held: string): EvidenceDraft {
  j.verdict = 'FRAME_EQUIVOCATION';
  j.message = `ledger: pack ${j.serial ?? '?'} signed two different frames with counter ${j.counter ?? '?'}`;
  const detail = `${j.serial ?? '?'} counter ${j.counter ?? '?'}: held payload SHA-256 ${held}, ${gw.origin} index ${idx} carries ${toHex(payloadHash(j))}`;
  return { kind: 'equivocation', level: 'error', accepted: null, offending: null, proof: [], detail };
}

/** Whether `e` (a STORAGE error or a driver error) is a unique violation (SQLSTATE 23505). */
function isUniqueViolation(e: unknown): boolean {
  const inner = e instanceof Error && e.cause !== undefined ? e.cause : e;
  return (inner as { code?: unknown } | null)?.code === '23505';
}

/**
 * Writes the candidates (sorted by (serial, counter)); returns one character per candidate, in list
 * order: '1' inserted, '0' another sighting of the held frame, '-' neither (the held frame has
 * another payload).
 *
 * A catch-up brings frames the ledger has never seen, so the held ones are found first — one index
 * range scan per serial over the candidates' counters, typically empty — and the others go in with a
 * plain INSERT, which costs PostgreSQL ≈ 3 µs less per row than INSERT … ON CONFLICT (speculative
 * insertion). The held ones take the ON CONFLICT statement, which adds a sighting or, for another
 * payload, touches nothing. A frame inserted by a concurrent upload after the range scan makes the
 * plain INSERT fail with a unique violation: it is rolled back to a savepoint and every candidate
 * then takes the ON CONFLICT statement, exactly as if none had been found new.
 */
async function writeFrames(tx: Queryable, gw: GatewayRecord, list: readonly Candidate[], binary: boolean): Promise<string> {
  const ranges = new Map<string, { lo: number; hi: number }>();
  for (const c of list) {
    const r = ranges.get(c.serial);
    if (r === undefined) ranges.set(c.serial, { lo: c.counter, hi: c.counter });
    else r.hi = c.counter; // sorted by counter within a serial
  }
  const r = [...ranges];
  const held = await tx.query<{ serial: string; counters: string }>(
    `SELECT u.s AS serial, string_agg(f.counter::text, ',') AS counters
     FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(s, lo, hi)
       JOIN frames f ON f.serial = u.s AND f.counter BETWEEN u.lo AND u.hi
     GROUP BY u.s`,
    [r.map((x) => x[0]), intList(r.length, (i) => r[i]?.[1].lo ?? 0), intList(r.length, (i) => r[i]?.[1].hi ?? 0)],
  );
  const heldSet = new Map(held.map((h) => [h.serial, new Set(h.counters.split(',').map(Number))]));
  const fresh: number[] = [];
  const again: number[] = [];
  list.forEach((c, i) => {
    if (heldSet.get(c.serial)?.has(c.counter) === true) again.push(i);
    else fresh.push(i);
  });
  const out = new Array<string>(list.length).fill('-');
  if (fresh.length > 0) {
    await tx.query('SAVEPOINT new_frames');
    try {
      await insertFrames(tx, gw, fresh.map((i) => list[i] as Candidate), false, binary);
      await tx.query('RELEASE SAVEPOINT new_frames');
      for (const i of fresh) out[i] = '1';
    } catch (e) {
      if (!isUniqueViolation(e)) throw e;
      await tx.query('ROLLBACK TO SAVEPOINT new_frames');
      again.push(...fresh);
      again.sort((a, b) => a - b); // the lock order again
    }
  }
  if (again.length > 0) {
    const got = await insertFrames(tx, gw, again.map((i) => list[i] as Candidate), true, binary);
    again.forEach((i, k) => {
      out[i] = got[k] ?? '-';
    });
  }
  return out.join('');
}

/**
 * One multi-row INSERT of `list` into frames. `upsert`: ON CONFLICT (serial, counter) adds the
 * sightings to a held frame with the same payload hash; returns the outcome string (see writeFrames)
 * from a RETURNING in a CTE joined back to the input. Otherwise a plain INSERT (returns '').
 */
async function insertFrames(tx: Queryable, gw: GatewayRecord, list: readonly Candidate[], upsert: boolean, binary: boolean): Promise<string> {
  const n = list.length;
  const cand = (i: number): Candidate => list[i] as Candidate;
  const col = (f: number): string => intList(n, (i) => frameValue(cand(i).j, f));
  const serials = indexed(n, (i) => cand(i).serial, (i) => cand(i).serial);
  const sources = indexed(n, (i) => cand(i).j.source, (i) => cand(i).j.source);
  const certs = indexed(n, (i) => cand(i).j.certHex, (i) => cand(i).j.certSha256);
  // The payload hashes: one binary parameter on node-postgres (32 bytes each, cut apart in SQL), a bytea[] on PGlite (see upload.ts insertLeaves).
  const hash = binary ? 'substring($4::bytea FROM (u.k::int - 1) * 32 + 1 FOR 32)' : 'u.h';
  const insert = `INSERT INTO frames (serial, counter, frame_sha256, gateway_id, idx, received_at, source, cert_sha256, device_time,
          soc, soh, voltage, current, cell_min, cell_max, temp_min, temp_max, cycles, alarms, sightings)
       SELECT ($21::text[])[u.si], u.counter, ${hash}, $1, u.idx, u.r, ($22::text[])[u.soi], ($23::bytea[])[u.ci], u.t,
              u.soc, u.soh, u.v, u.cur, u.cmin, u.cmax, u.tmin, u.tmax, u.cyc, u.al, u.n
       FROM unnest($2::int[], $3::bigint[], ${binary ? '' : '$4::bytea[], '}$5::bigint[], $6::bigint[], $7::int[], $8::int[], $9::bigint[],
                   $10::int[], $11::int[], $12::int[], $13::int[], $14::int[], $15::int[], $16::int[], $17::int[], $18::bigint[], $19::bigint[], $20::int[])
         WITH ORDINALITY AS u(si, counter, ${binary ? '' : 'h, '}idx, r, soi, ci, t, soc, soh, v, cur, cmin, cmax, tmin, tmax, cyc, al, n, k)`;
  // One character per candidate, in list order (see writeFrames).
  const sql = upsert
    ? `WITH ins AS (
       ${insert}
       ON CONFLICT (serial, counter) DO UPDATE SET sightings = frames.sightings + excluded.sightings
         WHERE frames.frame_sha256 = excluded.frame_sha256
       RETURNING serial, counter, (xmax = 0) AS inserted)
     SELECT string_agg(CASE WHEN ins.inserted IS NULL THEN '-' WHEN ins.inserted THEN '1' ELSE '0' END, '' ORDER BY u.k) AS outcome
     FROM unnest($2::int[], $3::bigint[]) WITH ORDINALITY AS u(si, counter, k)
       LEFT JOIN ins ON ins.serial = ($21::text[])[u.si] AND ins.counter = u.counter`
    : insert;
  const rows = await tx.query<{ outcome: string | null }>(sql, [
    gw.id,
    serials.index,
    intList(n, (i) => cand(i).counter),
    binary ? concatBytes(list.map((c) => payloadHash(c.j))).bytes : list.map((c) => payloadHash(c.j)),
    intList(n, (i) => cand(i).idx),
    intList(n, (i) => cand(i).j.receivedAt),
    sources.index,
    certs.index,
    col(1), col(2), col(3), col(4), col(5), col(6), col(7), col(8), col(9), col(10), col(11),
    intList(n, (i) => cand(i).sightings),
    serials.distinct,
    sources.distinct,
    certs.distinct,
  ]);
  return rows[0]?.outcome ?? '';
}

/**
 * Stores the verified frames among `fresh` (leaves from index `from`) and updates the pack
 * summaries. `binary`: bulk bytes as one binary parameter (node-postgres) rather than bytea[] (PGlite).
 */
export async function storeFrames(tx: Queryable, gw: GatewayRecord, from: number, fresh: readonly JudgedLeaf[], binary = false): Promise<FramesOutcome> {
  const equivocations: EvidenceDraft[] = [];
  const bySerial = new Map<string, Map<number, Candidate>>();
  fresh.forEach((j, k) => {
    if (j.verdict !== null || j.reply === null || j.serial === null || j.counter === null) return;
    let counters = bySerial.get(j.serial);
    if (counters === undefined) {
      counters = new Map();
      bySerial.set(j.serial, counters);
    }
    const seen = counters.get(j.counter);
    if (seen === undefined) counters.set(j.counter, { j, serial: j.serial, counter: j.counter, idx: from + k, sightings: 1 });
    else if (bytesEqual(payloadHash(seen.j), payloadHash(j))) seen.sightings++;
    else equivocations.push(equivocation(j, from + k, gw, toHex(payloadHash(seen.j))));
  });
  // Sorted by (serial, counter): the lock order of every upload.
  const list: Candidate[] = [];
  for (const serial of [...bySerial.keys()].sort()) {
    const counters = bySerial.get(serial);
    if (counters !== undefined) for (const c of [...counters.values()].sort((a, b) => a.counter - b.counter)) list.push(c);
  }
  if (list.length === 0) return { equivocations, stored: 0, seenAgain: 0 };
  const outcome = await writeFrames(tx, gw, list, binary);
  const missing = list.filter((_, i) => outcome[i] !== '1' && outcome[i] !== '0');
  if (missing.length > 0) {
    // Not inserted and not updated: the held frame has another payload.
    const held = await tx.query<{ serial: string; counter: number; frame_sha256: Uint8Array }>(
      'SELECT serial, counter, frame_sha256 FROM frames WHERE (serial, counter) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))',
      [missing.map((c) => c.serial), missing.map((c) => c.counter)],
    );
    const hashOf = new Map(held.map((h) => [`${h.serial}\n${h.counter}`, toHex(h.frame_sha256)]));
    for (const c of missing) equivocations.push(equivocation(c.j, c.idx, gw, hashOf.get(`${c.serial}\n${c.counter}`) ?? '?'));
  }
  // Per-pack summaries: new frames into packs, every sighting into pack_gateways.
  const packs = new Map<string, { frames: number; lo: number; hi: number; first: number; last: number }>();
  const sight = new Map<string, { frames: number; first: number; last: number }>();
  let stored = 0;
  let seenAgain = 0;
  list.forEach((c, i) => {
    const o = outcome[i];
    if (o !== '1' && o !== '0') return;
    const { serial, counter } = c;
    const t = c.j.receivedAt ?? 0;
    if (o === '1') {
      stored++;
      seenAgain += c.sightings - 1;
      const p = packs.get(serial);
      if (p === undefined) packs.set(serial, { frames: 1, lo: counter, hi: counter, first: t, last: t });
      else {
        p.frames++;
        p.lo = Math.min(p.lo, counter);
        p.hi = Math.max(p.hi, counter);
        p.first = Math.min(p.first, t);
        p.last = Math.max(p.last, t);
      }
    } else seenAgain += c.sightings;
    const s = sight.get(serial);
    if (s === undefined) sight.set(serial, { frames: c.sightings, first: t, last: t });
    else {
      s.frames += c.sightings;
      s.first = Math.min(s.first, t);
      s.last = Math.max(s.last, t);
    }
  });
  if (packs.size > 0) {
    const p = [...packs.entries()];
    await tx.query(
      `INSERT INTO packs (serial, frames, first_counter, last_counter, first_seen, last_seen)
       SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
       ON CONFLICT (serial) DO UPDATE SET frames = packs.frames + excluded.frames,
         first_counter = LEAST(packs.first_counter, excluded.first_counter), last_counter = GREATEST(packs.last_counter, excluded.last_counter),
         first_seen = LEAST(packs.first_seen, excluded.first_seen), last_seen = GREATEST(packs.last_seen, excluded.last_seen)`,
      [p.map((x) => x[0]), p.map((x) => x[1].frames), p.map((x) => x[1].lo), p.map((x) => x[1].hi), p.map((x) => x[1].first), p.map((x) => x[1].last)],
    );
  }
  if (sight.size > 0) {
    const s = [...sight.entries()];
    await tx.query(
      `INSERT INTO pack_gateways (serial, gateway_id, frames, first_seen, last_seen)
       SELECT u.s, $1, u.f, u.a, u.b FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) AS u(s, f, a, b)
       ON CONFLICT (serial, gateway_id) DO UPDATE SET frames = pack_gateways.frames + excluded.frames,
         first_seen = LEAST(pack_gateways.first_seen, excluded.first_seen), last_seen = GREATEST(pack_gateways.last_seen, excluded.last_seen)`,
      [gw.id, s.map((x) => x[0]), s.map((x) => x[1].frames), s.map((x) => x[1].first), s.map((x) => x[1].last)],
    );
  }
  return { equivocations, stored, seenAgain };
}
