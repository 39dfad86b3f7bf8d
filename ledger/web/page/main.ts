/**
 * The service engineer's page (docs/service-engineer.md): asks for the API token once per tab,
 * finds packs by serial prefix, and for one pack shows its summary, certificate, charts of SoH,
 * SoC, voltage, temperature and cell-voltage spread over a chosen time range, the frames with
 * alarms, provenance (which gateways saw it; per frame origin, log index, sightings, witnessed),
 * CSV/JSON downloads and a per-frame proof that is downloaded and verified in the browser.
 * Everything from the ledger is inserted as text, never as markup.
 */
import type { HistoryResponse, HistoryRow, PackDetail, PacksResponse } from '../api-types.js';
import { ApiError, clearToken, getJson, getText, getToken, saveFile, setToken } from './api.js';
import { CHARTS, renderChart } from './charts.js';
import { byId, el, fmtNum, fmtTime, inputById, table } from './dom.js';
import { proveRow } from './proof.js';

/** Rows fetched per request (the API's default limit) and at most per view. */
const PAGE_ROWS = 10_000;
const MAX_ROWS = 100_000;
/** Frames listed in the provenance table (the charts use all rows). */
const MAX_TABLE_ROWS = 1_000;

let current: { serial: string; rows: HistoryRow[] } | undefined;

function status(id: string, text: string, isError = false): void {
  const s = byId(id);
  s.textContent = text;
  s.classList.toggle('error', isError);
}

function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.status === 401 ? 'The ledger refused the token: enter a valid one.' : `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

function handleAuth(e: unknown): boolean {
  if (e instanceof ApiError && e.status === 401) {
    showLogin('The ledger refused the token: enter a valid one.');
    return true;
  }
  return false;
}

function showLogin(message = ''): void {
  clearToken();
  byId('login').hidden = false;
  byId('app').hidden = true;
  status('login-status', message, message !== '');
  inputById('token').focus();
}

function showApp(): void {
  byId('login').hidden = true;
  byId('app').hidden = false;
}

/** UTC input "2026-06-01T08:00" → ISO, or undefined when empty. */
function rangeValue(id: string): string | undefined {
  const v = inputById(id).value;
  if (v === '') return undefined;
  const t = Date.parse(`${v}Z`);
  return Number.isFinite(t) ? new Date(t).toISOString() : undefined;
}

function historyQuery(extra: Record<string, string>): string {
  const q = new URLSearchParams(extra);
  const since = rangeValue('since');
  const until = rangeValue('until');
  if (since !== undefined) q.set('since', since);
  if (until !== undefined) q.set('until', until);
  return q.toString();
}

async function search(prefix: string): Promise<void> {
  status('search-status', 'Searching…');
  try {
    const { packs } = await getJson<PacksResponse>(`/api/v1/packs?${new URLSearchParams({ prefix, limit: '50' }).toString()}`);
    const rows = packs.map((p) => {
      const open = el('button', { type: 'button', class: 'link', 'data-serial': p.serial }, p.serial);
      open.addEventListener('click', () => void openPack(p.serial));
      return [open, String(p.frames), fmtTime(p.lastSeen), p.gateways.join(', '), p.latest ? fmtNum(p.latest.sohPct, 1) : '–'];
    });
    byId('results').replaceChildren(table(`Packs matching “${prefix}”`, ['Serial', 'Frames', 'Last seen', 'Gateways', 'Latest SoH %'], rows, 'results-table'));
    status('search-status', `${packs.length} pack(s) found.`);
  } catch (e) {
    if (!handleAuth(e)) status('search-status', errorText(e), true);
  }
}

async function fetchHistory(serial: string): Promise<{ rows: HistoryRow[]; truncated: boolean }> {
  const rows: HistoryRow[] = [];
  let after: number | null = null;
  do {
    const extra: Record<string, string> = { limit: String(PAGE_ROWS) };
    if (after !== null) extra.after = String(after);
    const page: HistoryResponse = await getJson<HistoryResponse>(`/api/v1/packs/${encodeURIComponent(serial)}/history?${historyQuery(extra)}`);
    rows.push(...page.rows);
    after = page.next;
  } while (after !== null && rows.length < MAX_ROWS);
  return { rows, truncated: after !== null };
}

function renderDetail(d: PackDetail): void {
  const facts: [string, string][] = [
    ['Frames', String(d.frames)],
    ['Counters', `${d.firstCounter} … ${d.lastCounter}`],
    ['First seen', fmtTime(d.firstSeen)],
    ['Last seen', fmtTime(d.lastSeen)],
    ['Rejected frames', String(d.rejected)],
  ];
  if (d.certificate) {
    facts.push(
      ['Certificate', d.certificate.subject],
      ['Key', `${d.certificate.alg}, certificate serial ${d.certificate.serial}`],
      ['Fingerprint (SHA-256)', d.certificate.fingerprint],
      ['Valid', `${fmtTime(d.certificate.notBefore)} – ${fmtTime(d.certificate.notAfter)}`],
    );
  }
  const dl = el('dl', { id: 'pack-facts' });
  for (const [k, v] of facts) dl.append(el('dt', {}, k), el('dd', {}, v));
  byId('pack-summary').replaceChildren(dl);
  byId('gateways').replaceChildren(
    table(
      'Gateways that logged this pack',
      ['Gateway log (origin)', 'Frames', 'First seen', 'Last seen'],
      d.gateways.map((g) => [g.origin, String(g.frames), fmtTime(g.firstSeen), fmtTime(g.lastSeen)]),
      'gateways-table',
    ),
  );
}

function renderRows(rows: readonly HistoryRow[], truncated: boolean): void {
  byId('charts').replaceChildren(...CHARTS.map((c) => renderChart(c, rows)));
  const alarmRows = rows.filter((r) => r.alarms !== 0).map((r) => [String(r.counter), fmtTime(r.deviceTime), `0x${r.alarms.toString(16)}`, r.alarmNames.join(', ')]);
  byId('alarms').replaceChildren(
    alarmRows.length > 0 ? table('Frames with alarms', ['Counter', 'Device time', 'Bits', 'Alarms'], alarmRows, 'alarms-table') : el('p', { id: 'alarms-none' }, 'No alarms in this range.'),
  );
  const shown = rows.slice(-MAX_TABLE_ROWS);
  const frameRows = shown.map((r) => {
    const cells: (Node | string)[] = [
      String(r.counter),
      fmtTime(r.deviceTime),
      fmtTime(r.receivedAt),
      r.origin,
      String(r.index),
      r.source,
      String(r.sightings),
      r.witnessed ? '✔ witnessed' : 'not yet',
      fmtNum(r.sohPct, 1),
      fmtNum(r.socPct, 1),
      r.alarmNames.join(', '),
    ];
    if (r.witnessed) {
      const b = el('button', { type: 'button', 'data-proof': r.counter, 'aria-label': `Download and verify the proof of frame ${r.counter}` }, 'Proof');
      b.addEventListener('click', () => void proveRow(r));
      cells.push(b);
    } else {
      cells.push(el('span', { title: 'No witnessed checkpoint covers this frame yet' }, '–'));
    }
    return cells;
  });
  byId('frames').replaceChildren(
    table(
      rows.length > shown.length ? `Frames (latest ${shown.length} of ${rows.length})` : `Frames (${rows.length})`,
      ['Counter', 'Device time', 'Received (first)', 'Gateway', 'Log index', 'Source', 'Sightings', 'Witnessed', 'SoH %', 'SoC %', 'Alarms', 'Proof'],
      frameRows,
      'frames-table',
    ),
  );
  status('pack-status', `${rows.length} frame(s) in range${truncated ? ` (stopped at ${MAX_ROWS}: narrow the range)` : ''}.`);
}

async function loadRows(serial: string): Promise<void> {
  status('pack-status', 'Loading history…');
  try {
    const { rows, truncated } = await fetchHistory(serial);
    current = { serial, rows };
    renderRows(rows, truncated);
  } catch (e) {
    if (!handleAuth(e)) status('pack-status', errorText(e), true);
  }
}

async function openPack(serial: string): Promise<void> {
  byId('pack').hidden = false;
  byId('proof').hidden = true;
  byId('pack-title').textContent = `Pack ${serial}`;
  history.replaceState(null, '', `#pack=${encodeURIComponent(serial)}`);
  try {
    renderDetail(await getJson<PackDetail>(`/api/v1/packs/${encodeURIComponent(serial)}`));
  } catch (e) {
    if (!handleAuth(e)) status('pack-status', errorText(e), true);
    return;
  }
  await loadRows(serial);
}

async function download(format: 'csv' | 'json'): Promise<void> {
  if (current === undefined) return;
  const { serial } = current;
  try {
    const { text } = await getText(`/api/v1/packs/${encodeURIComponent(serial)}/history?${historyQuery({ format, limit: String(MAX_ROWS) })}`);
    saveFile(`${serial}-history.${format}`, text, format === 'csv' ? 'text/csv' : 'application/json');
  } catch (e) {
    if (!handleAuth(e)) status('pack-status', errorText(e), true);
  }
}

function start(): void {
  byId('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = inputById('token').value.trim();
    if (token === '') return;
    setToken(token);
    inputById('token').value = '';
    showApp();
    void search(inputById('prefix').value.trim());
  });
  byId('search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void search(inputById('prefix').value.trim());
  });
  byId('range-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (current !== undefined) void loadRows(current.serial);
  });
  byId('download-csv').addEventListener('click', (ev) => {
    ev.preventDefault();
    void download('csv');
  });
  byId('download-json').addEventListener('click', (ev) => {
    ev.preventDefault();
    void download('json');
  });
  byId('logout').addEventListener('click', () => {
    showLogin();
  });
  if (getToken() === null) {
    showLogin();
    return;
  }
  showApp();
  const m = /^#pack=(.+)$/.exec(location.hash);
  if (m?.[1] !== undefined) void openPack(decodeURIComponent(m[1]));
}

start();
