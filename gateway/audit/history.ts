/**
 * One pack's history from the local log (`gateway history`, DESIGN.md "service engineer"): each
 * entry decoded into a row of display units (docs/protocol.md §2.1.1 display scale) with what
 * vouches for it — the entry's index, the latest signed checkpoint covering it (else "pending"),
 * and the frame's COSE signature re-verified against the certificate the leaf names (from the
 * certificate store). Everything a row shows is covered by a signature (§7.8): the frame fields by
 * the device's, receive time and source by the gateway checkpoint over the leaf hash. Rows render
 * as an aligned table, RFC 4180 CSV or JSON lines-in-an-array.
 */
import { decodeFrame, decodeLeaf, importSpki, isProtocolError, keyId, parseCertificate, parseSign1, toHex, verifySign1, type PublicKey } from '../../protocol/index.js';
import type { CertStore } from '../certs.js';
import { GatewayError } from '../errors.js';
import type { LogStore } from '../store/log-store.js';

export interface HistoryRow {
  index: number;
  receivedAt: string;
  source: string;
  counter: number;
  deviceTime: string;
  socPct: number;
  sohPct: number;
  voltageV: number;
  currentA: number;
  cellMinV: number;
  cellMaxV: number;
  tempMinC: number;
  tempMaxC: number;
  cycles: number;
  alarms: number;
  /** "ok", "no-cert" (chain not in the certificate store) or the failing protocol code. */
  signature: string;
  /** Size of the latest checkpoint covering the entry, or null when none covers it yet. */
  checkpoint: number | null;
}

export const HISTORY_FIELDS: readonly (keyof HistoryRow)[] = [
  'index', 'receivedAt', 'source', 'counter', 'deviceTime', 'socPct', 'sohPct', 'voltageV', 'currentA',
  'cellMinV', 'cellMaxV', 'tempMinC', 'tempMaxC', 'cycles', 'alarms', 'signature', 'checkpoint',
];

export type HistoryFormat = 'table' | 'csv' | 'json';

const round = (x: number, digits: number): number => Number(x.toFixed(digits));

/**
 * The rows of `serial` with since ≤ receivedAt < until (ms), oldest first. Throws STORE_CORRUPT /
 * STORE_IO from the store; a frame that does not decode or verify is a row with that code.
 */
export async function historyRows(store: LogStore, certs: CertStore, serial: string, window: { since?: number; until?: number }): Promise<HistoryRow[]> {
  const keys = new Map<string, { publicKey: PublicKey; kid: Uint8Array } | undefined>();
  const covered = store.latestCheckpoint()?.size ?? 0;
  const rows: HistoryRow[] = [];
  for await (const e of store.history(serial, window)) {
    const leaf = decodeLeaf(e.data);
    let signature = 'ok';
    let payload: Uint8Array;
    try {
      const hex = toHex(leaf.certSha256);
      if (!keys.has(hex)) {
        const chain = certs.chain(leaf.certSha256);
        const pk = chain === undefined ? undefined : importSpki(parseCertificate(chain[0] as Uint8Array).spki);
        keys.set(hex, pk === undefined ? undefined : { publicKey: pk, kid: keyId(pk) });
      }
      const k = keys.get(hex);
      if (k === undefined) {
        signature = 'no-cert';
        payload = parseSign1(leaf.frame).payload;
      } else payload = verifySign1(leaf.frame, k).payload;
    } catch (err) {
      if (!isProtocolError(err)) throw err;
      signature = err.code;
      payload = parseSign1(leaf.frame).payload;
    }
    const f = decodeFrame(payload);
    rows.push({
      index: e.index,
      receivedAt: new Date(leaf.receivedAt).toISOString(),
      source: leaf.source,
      counter: f.counter,
      deviceTime: new Date(f.time).toISOString(),
      socPct: round(f.soc / 10, 1),
      sohPct: round(f.soh / 10, 1),
      voltageV: round(f.voltage / 1000, 3),
      currentA: round(f.current / 1000, 3),
      cellMinV: round(Math.min(...f.cells) / 1000, 3),
      cellMaxV: round(Math.max(...f.cells) / 1000, 3),
      tempMinC: round(f.tempMin / 10, 1),
      tempMaxC: round(f.tempMax / 10, 1),
      cycles: f.cycles,
      alarms: f.alarms,
      signature,
      checkpoint: e.index < covered ? covered : null,
    });
  }
  return rows;
}

/** Parses --fields a,b,c against HISTORY_FIELDS. Throws USAGE naming the unknown field. */
export function parseFields(list: string | undefined): (keyof HistoryRow)[] {
  if (list === undefined) return [...HISTORY_FIELDS];
  const names = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const n of names) {
    if (!(HISTORY_FIELDS as readonly string[]).includes(n)) throw new GatewayError('USAGE', `gateway: --fields: unknown field ${JSON.stringify(n)}; expected some of ${HISTORY_FIELDS.join(',')}`);
  }
  if (names.length === 0) throw new GatewayError('USAGE', `gateway: --fields: expected a comma-separated list of ${HISTORY_FIELDS.join(',')}`);
  return names as (keyof HistoryRow)[];
}

const cell = (v: HistoryRow[keyof HistoryRow]): string => (v === null ? '' : String(v));

/** Renders rows; `table` aligns columns and ends with a summary line. */
export function formatHistory(rows: readonly HistoryRow[], fields: readonly (keyof HistoryRow)[], format: HistoryFormat): string {
  if (format === 'json') return `${JSON.stringify(rows.map((r) => Object.fromEntries(fields.map((f) => [f, r[f]]))), null, 2)}\n`;
  if (format === 'csv') {
    const esc = (s: string): string => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
    return [fields.join(','), ...rows.map((r) => fields.map((f) => esc(cell(r[f]))).join(','))].map((l) => `${l}\r\n`).join('');
  }
  const head = fields.map((f) => (f === 'checkpoint' ? 'checkpoint' : f));
  const body = rows.map((r) => fields.map((f) => (f === 'checkpoint' && r.checkpoint === null ? 'pending' : cell(r[f]))));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cols: readonly string[]): string => cols.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  const unsigned = rows.filter((r) => r.signature !== 'ok').length;
  const pending = rows.filter((r) => r.checkpoint === null).length;
  return `${[line(head), ...body.map(line)].join('\n')}\n${rows.length} frames; signatures re-verified: ${rows.length - unsigned} ok${unsigned > 0 ? `, ${unsigned} NOT` : ''}; ${rows.length - pending} covered by the latest checkpoint${pending > 0 ? `, ${pending} pending` : ''}\n`;
}
