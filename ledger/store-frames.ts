/**
 * Exactly-once frames across gateways (docs/ledger.md "Storage"): each verified frame is held once
 * in `frames`, keyed by (serial, counter), with the first sighting (gateway, log index, receive
 * time, source) and its decoded display columns, so history never decodes COSE at query time. The
 * same frame (same signed payload) in another leaf — another gateway, or the same gateway again —
 * adds a sighting only. A different payload under a (serial, counter) already held is a device
 * equivocation: the leaf gets verdict FRAME_EQUIVOCATION and evidence is kept.
 *
 * Concurrency: one multi-row INSERT … ON CONFLICT per upload, rows sorted by (serial, counter) so
 * two transactions (two gateways carrying the same frames, on two ledger processes) lock rows in the
 * same order and never deadlock; PostgreSQL's ON CONFLICT makes the loser add a sighting instead
 * of a duplicate. Per-pack summaries (packs, pack_gateways) are upserted the same way.
 */
import { toHex } from '../protocol/index.js';
import type { Queryable } from './db/driver.js';
import type { JudgedLeaf } from './judge.js';
import type { GatewayRecord } from './types.js';
import type { EvidenceDraft } from './upload.js';

interface Candidate {
  readonly j: JudgedLeaf;
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

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function equivocation(j: JudgedLeaf, idx: number, gw: GatewayRecord, held: string): EvidenceDraft {
  j.verdict = 'FRAME_EQUIVOCATION';
  j.message = `ledger: pack ${j.serial ?? '?'} signed two different frames with counter ${j.counter ?? '?'}`;
  const detail = `${j.serial ?? '?'} counter ${j.counter ?? '?'}: held payload SHA-256 ${held}, ${gw.origin} index ${idx} carries ${toHex(j.payloadHash ?? new Uint8Array(0))}`;
  return { kind: 'equivocation', level: 'error', accepted: null, offending: null, proof: [], detail };
}

/** Stores the verified frames among `fresh` (leaves from index `from`) and updates the pack summaries. */
export async function storeFrames(tx: Queryable, gw: GatewayRecord, from: number, fresh: readonly JudgedLeaf[]): Promise<FramesOutcome> {
  const equivocations: EvidenceDraft[] = [];
  const byKey = new Map<string, Candidate>();
  fresh.forEach((j, k) => {
    if (j.verdict !== null || j.values === null || j.payloadHash === null || j.serial === null) return;
    const key = `${j.serial}\n${j.counter ?? -1}`;
    const seen = byKey.get(key);
    if (seen === undefined) byKey.set(key, { j, idx: from + k, sightings: 1 });
    else if (Buffer.compare(seen.j.payloadHash ?? new Uint8Array(0), j.payloadHash) === 0) seen.sightings++;
    else equivocations.push(equivocation(j, from + k, gw, toHex(seen.j.payloadHash ?? new Uint8Array(0))));
  });
  const list = [...byKey.values()].sort((a, b) => cmp(a.j.serial ?? '', b.j.serial ?? '') || (a.j.counter ?? 0) - (b.j.counter ?? 0));
  if (list.length === 0) return { equivocations, stored: 0, seenAgain: 0 };
  const col = (f: number): number[] => list.map((c) => c.j.values?.[f] ?? 0);
  const rows = await tx.query<{ serial: string; counter: number; inserted: boolean }>(
    `INSERT INTO frames (serial, counter, frame_sha256, gateway_id, idx, received_at, source, cert_sha256, device_time,
        soc, soh, voltage, current, cell_min, cell_max, temp_min, temp_max, cycles, alarms, sightings)
     SELECT u.serial, u.counter, u.h, $1, u.idx, u.r, u.src, u.cert, u.t, u.soc, u.soh, u.v, u.cur, u.cmin, u.cmax, u.tmin, u.tmax, u.cyc, u.al, u.n
     FROM unnest($2::text[], $3::bigint[], $4::bytea[], $5::bigint[], $6::bigint[], $7::text[], $8::bytea[], $9::bigint[],
                 $10::int[], $11::int[], $12::int[], $13::int[], $14::int[], $15::int[], $16::int[], $17::int[], $18::bigint[], $19::bigint[], $20::int[])
       AS u(serial, counter, h, idx, r, src, cert, t, soc, soh, v, cur, cmin, cmax, tmin, tmax, cyc, al, n)
     ON CONFLICT (serial, counter) DO UPDATE SET sightings = frames.sightings + excluded.sightings
       WHERE frames.frame_sha256 = excluded.frame_sha256
     RETURNING serial, counter, (xmax = 0) AS inserted`,
    [
      gw.id,
      list.map((c) => c.j.serial),
      list.map((c) => c.j.counter),
      list.map((c) => c.j.payloadHash),
      list.map((c) => c.idx),
      list.map((c) => c.j.receivedAt),
      list.map((c) => c.j.source),
      list.map((c) => c.j.certSha256),
      col(1), col(2), col(3), col(4), col(5), col(6), col(7), col(8), col(9), col(10), col(11),
      list.map((c) => c.sightings),
    ],
  );
  const done = new Map(rows.map((r) => [`${r.serial}\n${r.counter}`, r.inserted]));
  const missing = list.filter((c) => !done.has(`${c.j.serial ?? ''}\n${c.j.counter ?? -1}`));
  if (missing.length > 0) {
    // Not inserted and not updated: the held frame has another payload.
    const held = await tx.query<{ serial: string; counter: number; frame_sha256: Uint8Array }>(
      'SELECT serial, counter, frame_sha256 FROM frames WHERE (serial, counter) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))',
      [missing.map((c) => c.j.serial), missing.map((c) => c.j.counter)],
    );
    const hashOf = new Map(held.map((h) => [`${h.serial}\n${h.counter}`, toHex(h.frame_sha256)]));
    for (const c of missing) equivocations.push(equivocation(c.j, c.idx, gw, hashOf.get(`${c.j.serial ?? ''}\n${c.j.counter ?? -1}`) ?? '?'));
  }
  // Per-pack summaries: new frames into packs, every sighting into pack_gateways.
  const packs = new Map<string, { frames: number; lo: number; hi: number; first: number; last: number }>();
  const sight = new Map<string, { frames: number; first: number; last: number }>();
  let stored = 0;
  let seenAgain = 0;
  for (const c of list) {
    const inserted = done.get(`${c.j.serial ?? ''}\n${c.j.counter ?? -1}`);
    if (inserted === undefined) continue;
    const serial = c.j.serial ?? '';
    const counter = c.j.counter ?? 0;
    const t = c.j.receivedAt ?? 0;
    if (inserted) {
      stored++;
      seenAgain += c.sightings - 1;
      const p = packs.get(serial);
      if (p === undefined) packs.set(serial, { frames: 1, lo: counter, hi: counter, first: t, last: t });
      else Object.assign(p, { frames: p.frames + 1, lo: Math.min(p.lo, counter), hi: Math.max(p.hi, counter), first: Math.min(p.first, t), last: Math.max(p.last, t) });
    } else seenAgain += c.sightings;
    const s = sight.get(serial);
    if (s === undefined) sight.set(serial, { frames: c.sightings, first: t, last: t });
    else Object.assign(s, { frames: s.frames + c.sightings, first: Math.min(s.first, t), last: Math.max(s.last, t) });
  }
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
