/**
 * What service engineers read (docs/ledger.md, the API of api.md): pack lists and details from the
 * per-pack summaries, one pack's history from the frames table by (serial, counter) — display
 * columns stored at upload, no COSE decoding per row — proof bundles for a frame's first sighting
 * against its gateway's latest cosigned checkpoint, the passport's input frames, and fork evidence.
 * Every argument arrives from an HTTP query: ranges are checked here too (BAD_QUERY).
 */
import {
  buildProofBundle,
  decodeFrame,
  decodeLeaf,
  frameDisplay,
  isoTime,
  parseCertificate,
  parseSign1,
  toHex,
  type SohFrame,
} from '../protocol/index.js';
import type { DeviceResolver } from './certs.js';
import type { Queryable } from './db/driver.js';
import { LedgerError } from './errors.js';
import { MapReader, withHashes } from './tree.js';
import type { EvidenceKind, ForkEvidence, HistoryRow, PackCertificate, PackDetail, PackSummary, PassportFrame } from './types.js';

/** Most history rows one call returns (api.md). */
export const MAX_HISTORY_LIMIT = 100_000;
/** Most packs one list returns. */
export const MAX_PACKS_LIMIT = 1000;

interface FrameRow {
  serial: string;
  counter: number;
  received_at: number;
  origin: string;
  idx: number;
  source: string;
  device_time: number;
  soc: number;
  soh: number;
  voltage: number;
  current: number;
  cell_min: number;
  cell_max: number;
  temp_min: number;
  temp_max: number;
  cycles: number;
  alarms: number;
  sightings: number;
  witnessed: boolean;
}

const FRAME_COLUMNS = `f.serial, f.counter, f.received_at, g.origin, f.idx, f.source, f.device_time, f.soc, f.soh, f.voltage, f.current,
  f.cell_min, f.cell_max, f.temp_min, f.temp_max, f.cycles, f.alarms, f.sightings, (f.idx < g.size) AS witnessed`;

/**
 * A stored frame row as a HistoryRow. The display conversion is protocol's frameDisplay (one scale
 * for the gateway's and the ledger's history): it reads only the fields stored here, and the lowest
 * and highest cell voltage stand in for the cell list (all it derives from the cells).
 */
export function historyRow(r: FrameRow): HistoryRow {
  const stub: SohFrame = {
    v: 1, serial: r.serial, counter: r.counter, time: r.device_time, soc: r.soc, soh: r.soh, voltage: r.voltage,
    current: r.current, tempMin: r.temp_min, tempMax: r.temp_max, cycles: r.cycles, cells: [r.cell_min, r.cell_max],
    remainingCapacity: 0, resistance: 0, alarms: r.alarms, firmware: '',
  };
  const d = frameDisplay(stub);
  return {
    serial: r.serial,
    counter: d.counter,
    deviceTime: d.deviceTime,
    receivedAt: isoTime(r.received_at),
    origin: r.origin,
    index: r.idx,
    source: r.source,
    socPct: d.socPct,
    sohPct: d.sohPct,
    voltageV: d.voltageV,
    currentA: d.currentA,
    cellMinV: d.cellMinV,
    cellMaxV: d.cellMaxV,
    cellSpreadMv: d.cellSpreadMv,
    tempMinC: d.tempMinC,
    tempMaxC: d.tempMaxC,
    cycles: d.cycles,
    alarms: d.alarms,
    alarmNames: d.alarmNames,
    sightings: r.sightings,
    witnessed: r.witnessed,
  };
}

function badQuery(what: string): never {
  throw new LedgerError('BAD_QUERY', `ledger: ${what}`);
}

function checkLimit(limit: number, max: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > max) badQuery(`limit must be an integer in 1..${max}, got ${String(limit)}`);
}

function checkSerial(serial: string): void {
  if (typeof serial !== 'string' || serial.length === 0 || serial.length > 64) badQuery('pack serial must be 1..64 characters');
}

interface PackRow {
  serial: string;
  frames: number;
  first_counter: number;
  last_counter: number;
  first_seen: number;
  last_seen: number;
}

async function latestRows(q: Queryable, packs: readonly PackRow[]): Promise<Map<string, HistoryRow>> {
  if (packs.length === 0) return new Map();
  const rows = await q.query<FrameRow>(
    `SELECT ${FRAME_COLUMNS} FROM frames f JOIN gateways g ON g.id = f.gateway_id
     WHERE (f.serial, f.counter) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))`,
    [packs.map((p) => p.serial), packs.map((p) => p.last_counter)],
  );
  return new Map(rows.map((r) => [r.serial, historyRow(r)]));
}

/** Packs whose serial starts with `prefix`, in serial order. Throws BAD_QUERY. */
export async function listPacks(q: Queryable, prefix: string, limit: number): Promise<PackSummary[]> {
  checkLimit(limit, MAX_PACKS_LIMIT);
  if (typeof prefix !== 'string' || prefix.length > 64) badQuery('prefix must be at most 64 characters');
  const like = `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  const packs = await q.query<PackRow>("SELECT * FROM packs WHERE serial LIKE $1 ESCAPE '\\' ORDER BY serial LIMIT $2", [like, limit]);
  if (packs.length === 0) return [];
  const gws = await q.query<{ serial: string; origin: string }>(
    'SELECT pg.serial, g.origin FROM pack_gateways pg JOIN gateways g ON g.id = pg.gateway_id WHERE pg.serial = ANY($1::text[]) ORDER BY g.origin',
    [packs.map((p) => p.serial)],
  );
  const latest = await latestRows(q, packs);
  return packs.map((p) => ({
    ...summary(p),
    gateways: gws.filter((g) => g.serial === p.serial).map((g) => g.origin),
    latest: latest.get(p.serial) ?? null,
  }));
}

function summary(p: PackRow): Omit<PackSummary, 'gateways' | 'latest'> {
  return {
    serial: p.serial,
    frames: p.frames,
    firstCounter: p.first_counter,
    lastCounter: p.last_counter,
    firstSeen: isoTime(p.first_seen),
    lastSeen: isoTime(p.last_seen),
  };
}

function certificateOf(der: Uint8Array): PackCertificate | null {
  try {
    const info = parseCertificate(der);
    const type = info.cert.publicKey.asymmetricKeyType;
    return {
      subject: info.subject,
      serial: info.serial,
      fingerprint: toHex(info.sha256),
      notBefore: info.notBefore.toISOString(),
      notAfter: info.notAfter.toISOString(),
      alg: type === 'ed25519' ? 'Ed25519' : type === 'ec' ? 'ES256' : String(type),
    };
  } catch {
    return null;
  }
}

/** One pack with its gateways, refused leaves and certificate; undefined when the ledger has nothing of it. */
export async function packDetail(q: Queryable, serial: string): Promise<PackDetail | undefined> {
  checkSerial(serial);
  const [p] = await q.query<PackRow>('SELECT * FROM packs WHERE serial = $1', [serial]);
  const [rej] = await q.query<{ n: number; first: number | null; last: number | null; cert: Uint8Array | null }>(
    'SELECT count(*) AS n, min(received_at) AS first, max(received_at) AS last, (array_agg(cert_sha256))[1] AS cert FROM leaves WHERE serial = $1 AND verdict IS NOT NULL',
    [serial],
  );
  const rejected = rej?.n ?? 0;
  if (p === undefined && rejected === 0) return undefined;
  const gws = await q.query<{ origin: string; frames: number; first_seen: number; last_seen: number }>(
    'SELECT g.origin, pg.frames, pg.first_seen, pg.last_seen FROM pack_gateways pg JOIN gateways g ON g.id = pg.gateway_id WHERE pg.serial = $1 ORDER BY g.origin',
    [serial],
  );
  const latest = p === undefined ? undefined : (await latestRows(q, [p])).get(serial);
  const certSha = p === undefined ? rej?.cert : (await q.query<{ cert_sha256: Uint8Array }>('SELECT cert_sha256 FROM frames WHERE serial = $1 AND counter = $2', [serial, p.last_counter]))[0]?.cert_sha256;
  const der = certSha === undefined || certSha === null ? undefined : (await q.query<{ der: Uint8Array }>('SELECT der FROM certs WHERE sha256 = $1', [certSha]))[0]?.der;
  const base = p !== undefined
    ? summary(p)
    : { serial, frames: 0, firstCounter: 0, lastCounter: 0, firstSeen: isoTime(rej?.first ?? 0), lastSeen: isoTime(rej?.last ?? 0) };
  return {
    ...base,
    latest: latest ?? null,
    gateways: gws.map((g) => ({ origin: g.origin, frames: g.frames, firstSeen: isoTime(g.first_seen), lastSeen: isoTime(g.last_seen) })),
    rejected,
    certificate: der === undefined ? null : certificateOf(der),
  };
}

export interface HistoryQuery {
  readonly since?: number;
  readonly until?: number;
  readonly after?: number;
  readonly limit: number;
}

/**
 * The history columns a page reads, all integers and NOT NULL, joined by PostgreSQL into one text
 * value per row: node-postgres parses a row field by field, and 16 fields × 100 k rows cost more
 * than the SQL itself. Every one is in the primary key's INCLUDE list (migration 2), so the page is
 * an index-only scan in counter order. Order matters: history() reads them by position.
 */
const HISTORY_NUMBERS = 'counter, received_at, gateway_id, idx, device_time, soc, soh, voltage, current, cell_min, cell_max, temp_min, temp_max, cycles, alarms, sightings';

const HISTORY_FIELDS = 16;

/**
 * Parses `count` comma-separated decimal integers (an optional '-' sign) from `text` into
 * out[at..at+count); a field that is not such an integer, or missing, becomes NaN, as Number()
 * would make it. The database writes these (concat_ws of NOT NULL integer columns).
 */
export function parseIntegers(text: string, out: Float64Array, at: number, count: number): void {
  let i = 0;
  for (let f = 0; f < count; f++) {
    const start = i;
    let neg = false;
    if (text.charCodeAt(i) === 0x2d) {
      neg = true;
      i++;
    }
    let v = 0;
    let digits = 0;
    let c = text.charCodeAt(i);
    while (c >= 0x30 && c <= 0x39) {
      v = v * 10 + (c - 0x30);
      digits++;
      c = text.charCodeAt(++i);
    }
    const ended = i >= text.length || c === 0x2c;
    out[at + f] = digits > 0 && ended && digits < 16 ? (neg ? -v : v) : Number(text.slice(start, text.indexOf(',', i) < 0 ? text.length : text.indexOf(',', i)));
    if (!ended) i = text.indexOf(',', i) < 0 ? text.length : text.indexOf(',', i);
    i++; // past the comma
  }
}

/** One pack's frames by counter, receivedAt in [since, until), counter > after. `next` is the counter to page from. Throws BAD_QUERY. */
export async function history(q: Queryable, serial: string, h: HistoryQuery): Promise<{ rows: HistoryRow[]; next: number | null }> {
  checkSerial(serial);
  checkLimit(h.limit, MAX_HISTORY_LIMIT);
  for (const [name, v] of [['since', h.since], ['until', h.until], ['after', h.after]] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < -1)) badQuery(`${name} must be an integer`);
  }
  const rows = await q.queryArrays(
    `SELECT concat_ws(',', ${HISTORY_NUMBERS}), source FROM frames
     WHERE serial = $1 AND counter > $2 AND received_at >= $3 AND received_at < $4
     ORDER BY counter LIMIT $5`,
    [serial, h.after ?? -1, h.since ?? 0, h.until ?? Number.MAX_SAFE_INTEGER, h.limit + 1],
  );
  const more = rows.length > h.limit;
  const page = more ? rows.slice(0, h.limit) : rows;
  // All the page's numbers in one array, HISTORY_FIELDS per row (no string array per row).
  const nums = new Float64Array(page.length * HISTORY_FIELDS);
  page.forEach((r, k) => {
    parseIntegers(String(r[0]), nums, k * HISTORY_FIELDS, HISTORY_FIELDS);
  });
  // Origin and witnessed per gateway, read after the page: a gateway's accepted size only grows, so
  // a row shown witnessed is witnessed.
  const ids = [...new Set(page.map((_, k) => nums[k * HISTORY_FIELDS + 2] ?? 0))];
  const gws = ids.length === 0 ? [] : await q.query<{ id: number; origin: string; size: number }>('SELECT id, origin, size FROM gateways WHERE id = ANY($1::int[])', [ids]);
  const gwOf = new Map(gws.map((g) => [g.id, g]));
  let last: number | null = null;
  const out = page.map((_, k) => {
    const at = (i: number): number => nums[k * HISTORY_FIELDS + i] ?? NaN;
    const gw = gwOf.get(at(2));
    last = at(0);
    return historyRow({
      serial, counter: at(0), received_at: at(1), origin: gw?.origin ?? '', idx: at(3), source: String(page[k]?.[1]), device_time: at(4),
      soc: at(5), soh: at(6), voltage: at(7), current: at(8), cell_min: at(9), cell_max: at(10), temp_min: at(11), temp_max: at(12),
      cycles: at(13), alarms: at(14), sightings: at(15), witnessed: gw !== undefined && at(3) < gw.size,
    });
  });
  return { rows: out, next: more ? last : null };
}

/**
 * The proof bundle (protocol buildProofBundle text) of a frame's first sighting, against its
 * gateway's latest cosigned checkpoint; undefined when the frame is unknown or no cosigned
 * checkpoint covers that sighting yet.
 */
export async function proofBundle(q: Queryable, devices: DeviceResolver, serial: string, counter: number): Promise<string | undefined> {
  checkSerial(serial);
  if (!Number.isSafeInteger(counter) || counter < 0) badQuery('counter must be a non-negative integer');
  const [f] = await q.query<{ gateway_id: number; idx: number; cert_sha256: Uint8Array; received_at: number; data: Uint8Array; size: number; checkpoint: string | null }>(
    `SELECT f.gateway_id, f.idx, f.cert_sha256, f.received_at, l.data, g.size, g.checkpoint
     FROM frames f JOIN gateways g ON g.id = f.gateway_id JOIN leaves l ON l.gateway_id = f.gateway_id AND l.idx = f.idx
     WHERE f.serial = $1 AND f.counter = $2`,
    [serial, counter],
  );
  if (f === undefined || f.checkpoint === null || f.idx >= f.size) return undefined;
  const hex = toHex(f.cert_sha256);
  const r = (await devices.resolve(q, [hex], new Map([[hex, f.received_at]]), new Map())).get(hex);
  if (r?.chain === undefined) return undefined;
  const reader = new MapReader();
  const checkpoint = f.checkpoint;
  return withHashes(q, f.gateway_id, reader, () => buildProofBundle({ index: f.idx, leaf: f.data, chain: r.chain ?? [], checkpoint, reader }));
}

/** A pack's verified frames, oldest first, decoded from their first sighting's leaf (the passport's input). */
export async function passportFrames(q: Queryable, serial: string): Promise<PassportFrame[]> {
  checkSerial(serial);
  const rows = await q.query<{ origin: string; idx: number; leaf_hash: Uint8Array; data: Uint8Array; received_at: number; witnessed: boolean }>(
    `SELECT g.origin, f.idx, l.leaf_hash, l.data, f.received_at, (f.idx < g.size) AS witnessed
     FROM frames f JOIN gateways g ON g.id = f.gateway_id JOIN leaves l ON l.gateway_id = f.gateway_id AND l.idx = f.idx
     WHERE f.serial = $1 ORDER BY f.counter`,
    [serial],
  );
  return rows.map((r) => ({
    frame: decodeFrame(parseSign1(decodeLeaf(r.data).frame).payload),
    origin: r.origin,
    index: r.idx,
    leafHash: toHex(r.leaf_hash),
    receivedAt: r.received_at,
    witnessed: r.witnessed,
  }));
}

/** Every piece of fork evidence, oldest first. */
export async function evidence(q: Queryable): Promise<ForkEvidence[]> {
  const rows = await q.query<{ id: number; kind: string; origin: string; at: number; accepted: string | null; offending: string | null; proof: string; detail: string }>(
    'SELECT e.id, e.kind, g.origin, e.at, e.accepted, e.offending, e.proof, e.detail FROM evidence e JOIN gateways g ON g.id = e.gateway_id ORDER BY e.id',
  );
  return rows.map((r) => ({
    id: r.id,
    kind: r.kind as EvidenceKind,
    origin: r.origin,
    at: r.at,
    accepted: r.accepted,
    offending: r.offending,
    proof: r.proof === '' ? [] : r.proof.split(' '),
    detail: r.detail,
  }));
}
