/**
 * Test-only fixture for the web page (not exported from ledger/index.ts): two packs provisioned
 * under a real CA hierarchy (Ed25519 root, P-256 line CA, CRLs), frames built and signed with
 * protocol code the way firmware signs them, two gateway Merkle logs (one pack seen by both),
 * checkpoints signed by the gateways and cosigned by a witness (the ledger's key), real proof
 * bundles from buildProofBundle — and a fixture implementation of the service-engineer API of
 * api.md over them, registered on a real fastify instance. One frame's proof is served tampered
 * (its leaf's receive time moved by an hour), so the page must show FAIL for it.
 */
import { webcrypto } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import {
  ALARM_BITS,
  MemoryHashStore,
  addSignatures,
  buildProofBundle,
  createCosigner,
  createCrl,
  createDeviceCert,
  createIntermediateCa,
  createNoteSigner,
  createRootCa,
  decodeLeaf,
  decodeProofBundle,
  encodeFrame,
  encodeLeaf,
  encodeProofBundle,
  encodeTrustBundle,
  formatVerifierKey,
  gatewayOrigin,
  keyFingerprint,
  keyId,
  parseCertificate,
  publicKeyFromSecretPortable,
  sha256,
  signCheckpoint,
  signSign1,
  treeHash,
  type RootCaParams,
  type SignatureAlg,
  type SohFrame,
} from '../../protocol/index.js';
import type { CertificateSummary, HistoryRow, PackDetail, PackSummary, TrustResponse } from './api-types.js';

export const TOKEN = 'test-token-0123456789';
export const T0 = Date.parse('2026-06-01T08:00:00Z');
/** Ten minutes between frames. */
export const STEP_MS = 600_000;
export const PACKS = [
  { serial: 'PK-2026-0001', alg: 'Ed25519' as SignatureAlg, frames: 40 },
  { serial: 'PK-2026-0002', alg: 'ES256' as SignatureAlg, frames: 25 },
] as const;
/** Frame of pack 1 whose proof is served tampered. */
export const TAMPERED_COUNTER = 7;
/** The last entries of gateway A's log that no witnessed checkpoint covers yet. */
export const UNWITNESSED_TAIL = 3;

const NOT_BEFORE = new Date('2025-01-01T00:00:00Z');
const NOT_AFTER = new Date('2125-01-01T00:00:00Z');

interface Entry {
  readonly leaf: Uint8Array;
  readonly index: number;
  readonly receivedAt: number;
  readonly source: string;
}

interface Log {
  readonly origin: string;
  readonly store: MemoryHashStore;
  readonly entries: Entry[];
  /** Witnessed checkpoint (cosigned by the ledger) and the size it covers. */
  checkpoint: string;
  witnessedSize: number;
  readonly vkey: string;
}

interface FrameRecord {
  readonly frame: SohFrame;
  /** Sightings in log order: the first is the one the row reports. */
  readonly sightings: { log: Log; entry: Entry }[];
}

export interface WebFixture {
  readonly trust: TrustResponse;
  readonly packs: ReadonlyMap<string, { readonly chain: Uint8Array[]; readonly certificate: CertificateSummary; readonly frames: FrameRecord[] }>;
  readonly logs: readonly Log[];
}

async function caKeys(alg: SignatureAlg): Promise<RootCaParams['keys']> {
  const algorithm = alg === 'Ed25519' ? { name: 'Ed25519' } : { name: 'ECDSA', namedCurve: 'P-256' };
  return (await webcrypto.subtle.generateKey(algorithm, false, ['sign', 'verify'])) as RootCaParams['keys'];
}

/** A frame of a slowly ageing pack: SoC saw-tooth, alarms on counters 12 (over-temperature) and 30 (imbalance). */
export function frameOf(serial: string, counter: number, packNo: number): SohFrame {
  const alarms = counter === 12 ? ALARM_BITS.overTemperature : counter === 30 ? ALARM_BITS.cellImbalance | ALARM_BITS.cellOverVoltage : 0;
  const spread = 8 + (counter % 5) * 3 + (counter === 30 ? 60 : 0);
  return {
    v: 1,
    serial,
    counter,
    time: T0 + counter * STEP_MS,
    soc: 200 + ((counter * 37) % 700),
    soh: 985 - counter - packNo * 30,
    voltage: 51_200 + ((counter * 97) % 900),
    current: counter % 2 === 0 ? -12_000 : 8_000,
    tempMin: 220 + (counter % 7) * 4,
    tempMax: 250 + (counter % 7) * 6 + (counter === 12 ? 350 : 0),
    cycles: 100 + counter,
    cells: Array.from({ length: 16 }, (_, i) => 3200 + (i === 15 ? spread : i % 3)),
    remainingCapacity: 99_000 - counter * 10,
    resistance: 17_000 + counter,
    alarms,
    firmware: '1.4.2',
  };
}

function alarmNames(mask: number): string[] {
  return Object.entries(ALARM_BITS)
    .filter(([, bit]) => (mask & bit) !== 0)
    .map(([name]) => name);
}

function witnessLog(log: Log, size: number, gatewaySeed: number, witness: ReturnType<typeof createCosigner>): void {
  const gw = createNoteSigner(log.origin, new Uint8Array(32).fill(gatewaySeed));
  log.checkpoint = addSignatures(signCheckpoint({ origin: log.origin, size, rootHash: treeHash(size, log.store) }, [gw]), [witness]);
  log.witnessedSize = size;
}

/** Builds the whole fixture (≈0.2 s: CA keys and certificates via WebCrypto, frames via @noble). */
export async function makeWebFixture(): Promise<WebFixture> {
  const rootKeys = await caKeys('Ed25519');
  const root = await createRootCa({ name: 'Web Test Root', org: 'Packchain Test', keys: rootKeys, alg: 'Ed25519', notBefore: NOT_BEFORE, notAfter: NOT_AFTER });
  const lineKeys = await caKeys('ES256');
  const line = await createIntermediateCa({
    name: 'Web Test Line 3',
    org: 'Packchain Test',
    keys: lineKeys,
    alg: 'ES256',
    notBefore: NOT_BEFORE,
    notAfter: NOT_AFTER,
    issuer: { cert: root, privateKey: rootKeys.privateKey },
  });
  const crlParams = { crlNumber: 1, thisUpdate: NOT_BEFORE, nextUpdate: new Date('2100-01-01T00:00:00Z'), revoked: [] };
  const crls = [
    await createCrl({ ...crlParams, issuer: { cert: root, privateKey: rootKeys.privateKey } }),
    await createCrl({ ...crlParams, issuer: { cert: line, privateKey: lineKeys.privateKey } }),
  ];
  const witness = createCosigner('ledger.packchain.test', new Uint8Array(32).fill(9), () => Math.floor(T0 / 1000) + 86_400);
  const mkLog = (name: string, seed: number): Log => {
    const origin = gatewayOrigin(name);
    const gw = createNoteSigner(origin, new Uint8Array(32).fill(seed));
    return { origin, store: new MemoryHashStore(), entries: [], checkpoint: '', witnessedSize: 0, vkey: formatVerifierKey(gw.name, gw.publicKey, 'ed25519') };
  };
  const logA = mkLog('line-3', 3);
  const logB = mkLog('line-4', 4);
  const append = (log: Log, leaf: Uint8Array, receivedAt: number, source: string): Entry => {
    const entry = { leaf, index: log.entries.length, receivedAt, source };
    log.store.append(leaf);
    log.entries.push(entry);
    return entry;
  };

  const packs = new Map<string, { chain: Uint8Array[]; certificate: CertificateSummary; frames: FrameRecord[] }>();
  const devices: { serial: string; alg: SignatureAlg; secretKey: Uint8Array; cert: Uint8Array; frames: number }[] = [];
  for (const [n, p] of PACKS.entries()) {
    const secretKey = new Uint8Array(32).fill(0x41 + n);
    const pub = publicKeyFromSecretPortable(p.alg, secretKey);
    const cert = await createDeviceCert({
      packSerial: p.serial,
      model: 'BMU-T1',
      org: 'Packchain Test',
      devicePublicKey: pub.raw,
      deviceAlg: p.alg,
      issuer: { cert: line, privateKey: lineKeys.privateKey },
      notBefore: NOT_BEFORE,
      notAfter: NOT_AFTER,
    });
    devices.push({ ...p, secretKey, cert });
    const info = parseCertificate(cert);
    packs.set(p.serial, {
      chain: [cert, line],
      certificate: {
        subject: info.subject,
        serial: info.serial,
        fingerprint: keyFingerprint(pub.raw),
        notBefore: NOT_BEFORE.toISOString(),
        notAfter: NOT_AFTER.toISOString(),
        alg: p.alg,
      },
      frames: [],
    });
  }
  // Receive order: interleaved by device time; pack 1's first 20 frames are also heard by gateway B.
  const maxFrames = Math.max(...PACKS.map((p) => p.frames));
  for (let c = 0; c < maxFrames; c++) {
    for (const [n, d] of devices.entries()) {
      if (c >= d.frames) continue;
      const frame = frameOf(d.serial, c, n);
      const cose = signSign1({ alg: d.alg, kid: keyId(publicKeyFromSecretPortable(d.alg, d.secretKey).raw), payload: encodeFrame(frame), secretKey: d.secretKey });
      const certSha256 = sha256(d.cert);
      const sightings: FrameRecord['sightings'] = [];
      const atA = frame.time + 400 + n * 50;
      const sourceA = `serial:/dev/ttyUSB${n}`;
      sightings.push({ log: logA, entry: append(logA, encodeLeaf({ receivedAt: atA, source: sourceA, certSha256, frame: cose }), atA, sourceA) });
      if (n === 0 && c < 20) {
        const atB = frame.time + 2_000;
        const sourceB = 'ble:C0:FF:EE:00:00:01';
        sightings.push({ log: logB, entry: append(logB, encodeLeaf({ receivedAt: atB, source: sourceB, certSha256, frame: cose }), atB, sourceB) });
      }
      packs.get(d.serial)?.frames.push({ frame, sightings });
    }
  }
  witnessLog(logA, logA.entries.length - UNWITNESSED_TAIL, 3, witness);
  witnessLog(logB, logB.entries.length, 4, witness);
  return {
    trust: {
      trustBundle: encodeTrustBundle({ roots: [root], intermediates: [line], crls }),
      witness: formatVerifierKey(witness.name, witness.publicKey, 'cosignature'),
      gateways: [logA, logB].map((l) => ({ origin: l.origin, vkey: l.vkey })),
    },
    packs,
    logs: [logA, logB],
  };
}

/** The HistoryRow of a frame record (api.md; display units of docs/protocol.md §2.1.1). */
export function rowOf(r: FrameRecord): HistoryRow {
  const f = r.frame;
  const first = r.sightings[0];
  if (first === undefined) throw new Error('web-testkit: frame without a sighting');
  const cellMin = Math.min(...f.cells);
  const cellMax = Math.max(...f.cells);
  return {
    serial: f.serial,
    counter: f.counter,
    deviceTime: new Date(f.time).toISOString(),
    receivedAt: new Date(first.entry.receivedAt).toISOString(),
    origin: first.log.origin,
    index: first.entry.index,
    source: first.entry.source,
    socPct: f.soc / 10,
    sohPct: f.soh / 10,
    voltageV: f.voltage / 1000,
    currentA: f.current / 1000,
    cellMinV: cellMin / 1000,
    cellMaxV: cellMax / 1000,
    cellSpreadMv: cellMax - cellMin,
    tempMinC: f.tempMin / 10,
    tempMaxC: f.tempMax / 10,
    cycles: f.cycles,
    alarms: f.alarms,
    alarmNames: alarmNames(f.alarms),
    sightings: r.sightings.length,
    witnessed: first.entry.index < first.log.witnessedSize,
  };
}

function summaryOf(serial: string, fx: WebFixture): PackSummary & { gatewayDetail: PackDetail['gateways'] } {
  const p = fx.packs.get(serial);
  if (p === undefined) throw new Error('web-testkit: unknown pack');
  const rows = p.frames.map(rowOf);
  const byOrigin = new Map<string, number[]>();
  for (const r of p.frames) for (const s of r.sightings) byOrigin.set(s.log.origin, [...(byOrigin.get(s.log.origin) ?? []), s.entry.receivedAt]);
  const iso = (t: number): string => new Date(t).toISOString();
  return {
    serial,
    frames: rows.length,
    firstCounter: rows[0]?.counter ?? 0,
    lastCounter: rows.at(-1)?.counter ?? 0,
    firstSeen: rows[0]?.receivedAt ?? '',
    lastSeen: rows.at(-1)?.receivedAt ?? '',
    gateways: [...byOrigin.keys()],
    latest: rows.at(-1) ?? null,
    gatewayDetail: [...byOrigin].map(([origin, ts]) => ({ origin, frames: ts.length, firstSeen: iso(Math.min(...ts)), lastSeen: iso(Math.max(...ts)) })),
  };
}

/** The proof text the API serves for a frame (tampered for TAMPERED_COUNTER of pack 1). */
export function proofOf(fx: WebFixture, serial: string, counter: number): string | undefined {
  const p = fx.packs.get(serial);
  const r = p?.frames.find((x) => x.frame.counter === counter);
  const first = r?.sightings[0];
  if (p === undefined || first === undefined || first.entry.index >= first.log.witnessedSize) return undefined;
  const text = buildProofBundle({ index: first.entry.index, leaf: first.entry.leaf, chain: p.chain, checkpoint: first.log.checkpoint, reader: first.log.store });
  if (serial !== PACKS[0].serial || counter !== TAMPERED_COUNTER) return text;
  // Someone "corrects" the receive time in the bundle: the leaf no longer hashes to the proven one.
  const b = decodeProofBundle(text);
  const leaf = decodeLeaf(b.leaf);
  return encodeProofBundle({ ...b, leaf: encodeLeaf({ ...leaf, receivedAt: leaf.receivedAt + 3_600_000 }) });
}

function csvOf(rows: readonly HistoryRow[], fields: readonly (keyof HistoryRow)[]): string {
  const cell = (v: unknown): string => {
    const s = Array.isArray(v) ? v.join('|') : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return [fields.join(','), ...rows.map((r) => fields.map((f) => cell(r[f])).join(','))].join('\r\n') + '\r\n';
}

type Q = Record<string, string | undefined>;

/** Registers the fixture API of api.md on `app` (bearer token TOKEN). */
export function registerFixtureApi(app: FastifyInstance, fx: WebFixture): void {
  const err = (code: string, message: string): { error: { code: string; message: string } } => ({ error: { code, message: `ledger: ${message}` } });
  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/api/')) return;
    if (req.headers.authorization !== `Bearer ${TOKEN}`) await reply.code(401).send(err('UNAUTHORIZED', 'a valid bearer token is required'));
  });
  app.get<{ Querystring: Q }>('/api/v1/packs', (req) => {
    const prefix = req.query.prefix ?? '';
    const packs = [...fx.packs.keys()].filter((s) => s.startsWith(prefix)).map((s) => {
      const { gatewayDetail: _, ...summary } = summaryOf(s, fx);
      return summary;
    });
    return { packs: packs.slice(0, Number(req.query.limit ?? 50)) };
  });
  app.get<{ Params: { serial: string } }>('/api/v1/packs/:serial', (req, reply) => {
    const p = fx.packs.get(req.params.serial);
    if (p === undefined) return reply.code(404).send(err('PACK_NOT_FOUND', `no pack ${req.params.serial}`));
    const { gatewayDetail, ...summary } = summaryOf(req.params.serial, fx);
    const detail: PackDetail = { ...summary, gateways: gatewayDetail, rejected: 0, certificate: p.certificate };
    return detail;
  });
  app.get<{ Params: { serial: string }; Querystring: Q }>('/api/v1/packs/:serial/history', (req, reply) => {
    const p = fx.packs.get(req.params.serial);
    if (p === undefined) return reply.code(404).send(err('PACK_NOT_FOUND', `no pack ${req.params.serial}`));
    const q = req.query;
    const time = (v: string | undefined, name: string): number | undefined => {
      if (v === undefined) return undefined;
      const t = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
      if (!Number.isFinite(t)) throw Object.assign(new Error(name), { statusCode: 400 });
      return t;
    };
    let since: number | undefined;
    let until: number | undefined;
    try {
      since = time(q.since, 'since');
      until = time(q.until, 'until');
    } catch (e) {
      return reply.code(400).send(err('BAD_QUERY', `${(e as Error).message}: expected ISO 8601 or ms`));
    }
    const limit = Math.min(Number(q.limit ?? 10_000), 100_000);
    const after = q.after === undefined ? -1 : Number(q.after);
    const all = p.frames
      .map(rowOf)
      .filter((r) => r.counter > after)
      .filter((r) => (since === undefined || Date.parse(r.receivedAt) >= since) && (until === undefined || Date.parse(r.receivedAt) < until));
    const rows = all.slice(0, limit);
    const next = all.length > limit ? (rows.at(-1)?.counter ?? null) : null;
    if (q.format === 'csv') {
      const fields = (q.fields?.split(',') ?? Object.keys(rows[0] ?? rowOf(p.frames[0] as FrameRecord))) as (keyof HistoryRow)[];
      return reply.type('text/csv; charset=utf-8').send(csvOf(rows, fields));
    }
    return { serial: req.params.serial, rows, next };
  });
  app.get<{ Params: { serial: string; counter: string } }>('/api/v1/packs/:serial/frames/:counter/proof', (req, reply) => {
    const text = proofOf(fx, req.params.serial, Number(req.params.counter));
    if (text === undefined) return reply.code(404).send(err('FRAME_NOT_FOUND', `no witnessed frame ${req.params.counter} of ${req.params.serial}`));
    return reply
      .type('text/plain; charset=utf-8')
      .header('content-disposition', `attachment; filename="${req.params.serial}-${req.params.counter}.proof"`)
      .send(text);
  });
  app.get('/api/v1/trust', () => fx.trust);
}
