/**
 * The per-frame "Proof" action: downloads the frame's proof bundle (GET …/frames/:counter/proof,
 * saved as <serial>-<counter>.proof for offline checks with `packchain gateway verify-proof`),
 * then verifies it in the browser with the verifier bundle — protocol's own verifyProofBundle —
 * against GET /api/v1/trust, and shows each check's result. A bundle that fails shows FAIL with the
 * failing check, its error code and message. The verifier (~350 KB) loads on first use only.
 */
import type { HistoryRow, ProofReport, TrustResponse, VerifierModule } from '../api-types.js';
import { ApiError, getJson, getText, saveFile } from './api.js';
import { byId, el, fmtTime } from './dom.js';

const CHECK_NAMES: Record<string, string> = {
  trust: 'Trust material (roots, CRLs, keys)',
  bundle: 'Bundle format',
  checkpoint: 'Checkpoint signature (gateway)',
  witness: 'Witness cosignature (ledger)',
  inclusion: 'Inclusion proof (RFC 9162)',
  chain: 'Device certificate chain and CRLs',
  cose: 'COSE signature of the frame',
  serial: 'Pack serial match',
};

let trustPromise: Promise<TrustResponse> | undefined;
let verifierPromise: Promise<VerifierModule> | undefined;

function verifierUrl(): string {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="packchain-verifier"]');
  if (meta === null) throw new Error('page: verifier location missing from index.html');
  return meta.content;
}

function loadVerifier(): Promise<VerifierModule> {
  verifierPromise ??= import(/* @vite-ignore */ verifierUrl()) as Promise<VerifierModule>;
  return verifierPromise;
}

function loadTrust(): Promise<TrustResponse> {
  trustPromise ??= getJson<TrustResponse>('/api/v1/trust').catch((e: unknown) => {
    trustPromise = undefined;
    throw e;
  });
  return trustPromise;
}

function renderReport(row: HistoryRow, report: ProofReport, filename: string): HTMLElement {
  const rowMatches = report.verified === undefined || (report.verified.serial === row.serial && report.verified.counter === row.counter);
  const ok = report.ok && rowMatches;
  const verdict = ok
    ? el('p', { class: 'verdict ok', 'data-verdict': 'verified' }, `✔ verified — frame ${row.counter} of ${row.serial} is proven by ${filename}`)
    : el(
        'p',
        { class: 'verdict fail', 'data-verdict': 'fail' },
        `✘ FAIL — ${rowMatches ? (report.checks.find((c) => c.status === 'fail')?.detail ?? report.code ?? 'unknown') : `the bundle proves frame ${report.verified.counter} of ${report.verified.serial}, not the row asked for`}`,
      );
  const body = el('tbody');
  for (const c of report.checks) {
    const mark = c.status === 'ok' ? '✔ ok' : c.status === 'fail' ? '✘ FAIL' : '– skipped';
    body.append(
      el('tr', { class: `check-${c.status}`, 'data-check': c.check, 'data-status': c.status }, el('th', { scope: 'row' }, CHECK_NAMES[c.check] ?? c.check), el('td', {}, mark), el('td', {}, c.detail)),
    );
  }
  const t = el('table', { id: 'proof-checks' }, el('caption', {}, 'Checks run in this browser'), el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Check'), el('th', { scope: 'col' }, 'Result'), el('th', { scope: 'col' }, 'Detail'))), body);
  const facts = report.verified
    ? el('p', {}, `Log ${report.verified.origin}, index ${report.verified.index} of ${report.verified.treeSize}; received ${fmtTime(report.verified.receivedAt)}; witnessed by ${report.verified.witnesses.join(', ')}.`)
    : el('p', {}, `Bundle saved as ${filename}; check it offline with: packchain gateway verify-proof`);
  return el('div', {}, verdict, t, facts);
}

/** Downloads and verifies the proof of `row`, rendering into #proof. */
export async function proveRow(row: HistoryRow): Promise<void> {
  const section = byId('proof');
  const out = byId('proof-result');
  section.hidden = false;
  byId('proof-title').textContent = `Proof of frame ${row.counter} (${row.serial})`;
  out.replaceChildren(el('p', { role: 'status' }, 'Downloading and verifying…'));
  section.scrollIntoView({ block: 'nearest' });
  try {
    const path = `/api/v1/packs/${encodeURIComponent(row.serial)}/frames/${row.counter}/proof`;
    const [{ text, filename }, trust, verifier] = await Promise.all([getText(path), loadTrust(), loadVerifier()]);
    const name = filename ?? `${row.serial}-${row.counter}.proof`;
    saveFile(name, text, 'text/plain');
    const report = await verifier.verifyProof(text, trust);
    out.replaceChildren(renderReport(row, report, name));
  } catch (e) {
    const msg = e instanceof ApiError ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
    out.replaceChildren(el('p', { class: 'verdict fail', 'data-verdict': 'error', role: 'alert' }, `✘ FAIL — could not fetch the proof: ${msg}`));
  }
}
