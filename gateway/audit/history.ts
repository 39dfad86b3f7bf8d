/**
 * One pack's history from the local log (`gateway history`, DESIGN.md "service engineer"): each
 * entry decoded into a row of display units (docs/protocol.md §2.1.1 display scale) with what
 * vouches for it — the entry's index, the latest signed checkpoint covering it (else "pending"),
 * and the frame's COSE signature re-verified against the certificate the leaf names (from the
 * certificate store). Everything a row shows is covered by a signature (§7.8): the frame fields by
 * the device's, receive time and source by the gateway checkpoint over the leaf hash. Display units,
 * field lists and the table / RFC 4180 CSV / JSON renderings are protocol's (history-format.ts,
 * docs/protocol.md §11), shared with the ledger; this file adds the gateway's row and summary line.
 */
import {
  decodeFrame,
  decodeLeaf,
  frameDisplay,
  historyCsv,
  historyJson,
  historyTable,
  importSpki,
  isoTime,
  isProtocolError,
  keyId,
  parseCertificate,
  parseFieldList,
  parseSign1,
  toHex,
  verifySign1,
  type PublicKey,
} from '../../protocol/index.js';
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
    const d = frameDisplay(decodeFrame(payload));
    rows.push({
      index: e.index,
      receivedAt: isoTime(leaf.receivedAt),
      source: leaf.source,
      counter: d.counter,
      deviceTime: d.deviceTime,
      socPct: d.socPct,
      sohPct: d.sohPct,
      voltageV: d.voltageV,
      currentA: d.currentA,
      cellMinV: d.cellMinV,
      cellMaxV: d.cellMaxV,
      tempMinC: d.tempMinC,
      tempMaxC: d.tempMaxC,
      cycles: d.cycles,
      alarms: d.alarms,
      signature,
      checkpoint: e.index < covered ? covered : null,
    });
  }
  return rows;
}

/** Parses --fields a,b,c against HISTORY_FIELDS. Throws USAGE naming the unknown field. */
export function parseFields(list: string | undefined): (keyof HistoryRow)[] {
  try {
    return parseFieldList(list, HISTORY_FIELDS, '--fields');
  } catch (err) {
    if (!isProtocolError(err, 'HISTORY_FIELDS')) throw err;
    throw new GatewayError('USAGE', err.message.replace(/^protocol: /, 'gateway: '), { cause: err });
  }
}

/** Renders rows; `table` aligns columns (a pending checkpoint shows as "pending") and ends with a summary line. */
export function formatHistory(rows: readonly HistoryRow[], fields: readonly (keyof HistoryRow)[], format: HistoryFormat): string {
  if (format === 'json') return historyJson(rows, fields);
  if (format === 'csv') return historyCsv(rows, fields);
  const table = historyTable(rows, fields, (r, f) => (f === 'checkpoint' && r.checkpoint === null ? 'pending' : undefined));
  const unsigned = rows.filter((r) => r.signature !== 'ok').length;
  const pending = rows.filter((r) => r.checkpoint === null).length;
  return `${table}${rows.length} frames; signatures re-verified: ${rows.length - unsigned} ok${unsigned > 0 ? `, ${unsigned} NOT` : ''}; ${rows.length - pending} covered by the latest checkpoint${pending > 0 ? `, ${pending} pending` : ''}\n`;
}
