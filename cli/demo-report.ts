/**
 * What `packchain demo` shows once frames have flowed (cli/demo.ts): every pack as the ledger holds
 * it, one pack's history table, and a proof bundle — all read from the ledger's service-engineer
 * API over HTTP with the demo's token, exactly as a service engineer's client would (api.md). The
 * proof bundle is then verified offline with only public files from the demo directory (the trust
 * bundle, the gateway's verifier key, the ledger's witness key, required), and a copy with one
 * changed line is shown rejected with its protocol code.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  decodeTrustBundle,
  frameDisplay,
  historyTable,
  isProtocolError,
  parseVerifierKey,
  TrustStore,
  verifyProofBundle,
  type VerifiedBundle,
} from '../protocol/index.js';
import type { HistoryRow, PackSummary } from '../ledger/index.js';

/** Rows the history table shows (the newest frames of the pack). */
export const HISTORY_ROWS_SHOWN = 12;

/** The HistoryRow fields the demo's table shows. */
const HISTORY_FIELDS = ['counter', 'deviceTime', 'socPct', 'sohPct', 'voltageV', 'currentA', 'cellSpreadMv', 'tempMaxC', 'alarmNames', 'witnessed'] as const;

/** A client of the ledger's service-engineer API (Bearer token). */
export class LedgerApi {
  constructor(
    readonly url: string,
    private readonly token: string,
  ) {}

  /** GET `path`; throws naming the path and the ledger's error unless the status is 200. */
  async text(path: string): Promise<string> {
    const r = await fetch(`${this.url}${path}`, { headers: { authorization: `Bearer ${this.token}` }, signal: AbortSignal.timeout(10_000) });
    const body = await r.text();
    if (r.status !== 200) throw new Error(`demo: GET ${path}: HTTP ${r.status}: ${body.slice(0, 300)}`);
    return body;
  }

  async json<T>(path: string): Promise<T> {
    return JSON.parse(await this.text(path)) as T;
  }

  packs(): Promise<PackSummary[]> {
    return this.json<{ packs: PackSummary[] }>('/api/v1/packs?limit=1000').then((b) => b.packs);
  }

  /** Rows with counter > after, oldest first. */
  history(serial: string, after: number, limit: number): Promise<HistoryRow[]> {
    return this.json<{ rows: HistoryRow[] }>(`/api/v1/packs/${encodeURIComponent(serial)}/history?after=${after}&limit=${limit}`).then((b) => b.rows);
  }

  proof(serial: string, counter: number): Promise<string> {
    return this.text(this.proofPath(serial, counter));
  }

  proofPath(serial: string, counter: number): string {
    return `/api/v1/packs/${encodeURIComponent(serial)}/frames/${counter}/proof`;
  }
}

/** Every pack the ledger holds: link, frames, counters, latest SoC/SoH, gateways. */
export function packsTable(packs: readonly PackSummary[]): string {
  const rows = packs.map((p) => ({
    serial: p.serial,
    link: p.latest?.source.split(':')[0] ?? '',
    frames: p.frames,
    counters: `${p.firstCounter}..${p.lastCounter}`,
    socPct: p.latest?.socPct ?? '',
    sohPct: p.latest?.sohPct ?? '',
    gateways: p.gateways.join(' '),
  }));
  return historyTable(rows, ['serial', 'link', 'frames', 'counters', 'socPct', 'sohPct', 'gateways']);
}

/** The history rows as the demo's table. */
export function historyText(rows: readonly HistoryRow[]): string {
  return historyTable(rows, HISTORY_FIELDS);
}

export interface ProofFiles {
  readonly trustBundle: string;
  readonly gatewayVkey: string;
  readonly witnessVkey: string;
}

/** Verifies a proof bundle with only the public files: the gateway's key, the trust bundle, the ledger as required witness. */
export async function verifyOffline(bundle: string, files: ProofFiles): Promise<VerifiedBundle> {
  const firstLine = async (p: string): Promise<string> => ((await readFile(p, 'utf8')).split('\n')[0] ?? '').trim();
  const trust = await TrustStore.create(decodeTrustBundle(await readFile(files.trustBundle, 'utf8')));
  return verifyProofBundle(bundle, {
    trust,
    logs: [parseVerifierKey(await firstLine(files.gatewayVkey))],
    witnesses: [parseVerifierKey(await firstLine(files.witnessVkey))],
    requiredWitnesses: 1,
  });
}

/** One line on what a verified bundle establishes. */
export function verifiedText(v: VerifiedBundle): string {
  const d = frameDisplay(v.frame);
  return (
    `verified: ${v.device.packSerial} frame ${d.counter} (${d.deviceTime}, SoC ${d.socPct} %, SoH ${d.sohPct} %) is leaf ${v.index} of ` +
    `${v.origin} (tree size ${v.treeSize}); device certificate chains to the factory root; witnessed by ${v.witnesses.map((w) => w.name).join(', ')}`
  );
}

/**
 * A copy of the bundle claiming the neighbouring leaf index (the inclusion proof no longer leads to
 * the signed root), and what verifying it says: the protocol error code, or ACCEPTED (a bug).
 */
export async function tamperedVerdict(bundle: string, files: ProofFiles): Promise<{ change: string; verdict: string }> {
  const change = 'leaf index changed';
  // Another index inside the tree (not past its end), so the proof itself is what fails.
  const tampered = bundle.replace(/\nindex (\d+)\n/, (_m, n: string) => `\nindex ${Number(n) > 0 ? Number(n) - 1 : 1}\n`);
  if (tampered === bundle) return { change, verdict: 'not tampered (no index line found: a bug)' };
  try {
    await verifyOffline(tampered, files);
    return { change, verdict: 'ACCEPTED (a bug)' };
  } catch (e) {
    return { change, verdict: `rejected, ${isProtocolError(e) ? e.code : String(e)}` };
  }
}

/** Writes the bundle as `<dir>/<serial>-<counter>.proof`; returns the path. */
export async function writeProof(dir: string, serial: string, counter: number, bundle: string): Promise<string> {
  const path = join(dir, `${serial}-${counter}.proof`);
  await writeFile(path, bundle, { mode: 0o644 });
  return path;
}
