/**
 * Test-only helpers for driving the service engineer's page in a real browser (not exported from
 * ledger/index.ts), shared by page.test.ts (fixture API) and page-e2e.test.ts (the real Ledger and
 * server): one launch of Debian's Chromium (/usr/bin/chromium, installed by
 * scripts/setup-machine.sh; missing → the test fails, no skipping) with a throw-away profile, page
 * errors and any request to another host recorded (the request is aborted), screenshots, chart
 * vertex counts, and a "Proof" click that saves the downloaded bundle and waits for the verdict.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** What the evaluate callbacks use of a DOM element (they run in Chromium; this program has no DOM lib). */
export interface DomEl {
  getAttribute(name: string): string | null;
  readonly textContent: string | null;
  querySelectorAll(selector: string): Iterable<DomEl>;
}

export interface BrowserSession {
  readonly context: BrowserContext;
  readonly page: Page;
  /** The profile directory, also where downloads are saved. */
  readonly profile: string;
  /** Page errors and requests to any host but `base`, in order. */
  readonly pageErrors: string[];
  /** Full-page screenshot to `<artifacts>/<name>.png`. */
  shot(name: string): Promise<Buffer>;
  /** Closes the browser and removes the profile. */
  close(): Promise<void>;
}

/** Launches headless Chromium on a fresh profile; anything not served by `base` is refused and recorded. */
export async function launchBrowser(base: string, artifacts: string): Promise<BrowserSession> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/setup-machine.sh (apt-get install chromium)`);
  mkdirSync(artifacts, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), 'packchain-web-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      acceptDownloads: true,
      viewport: { width: 1280, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // Offline: anything not served by our server is refused and recorded.
  await context.route(
    (url) => !url.href.startsWith(base),
    async (route) => {
      pageErrors.push(`external request ${route.request().url()}`);
      await route.abort();
    },
  );
  return {
    context,
    page,
    profile,
    pageErrors,
    shot: (name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true }),
    close: async () => {
      try {
        await context.close();
      } finally {
        rmSync(profile, { recursive: true, force: true });
      }
    },
  };
}

/** Vertices of one series' polylines in a chart (one per history row). */
export async function vertices(page: Page, chartId: string, series: string): Promise<number> {
  return page.locator(`#${chartId} g[data-series="${series}"] polyline`).evaluateAll((lines: DomEl[]) =>
    lines.reduce((n: number, l) => n + (l.getAttribute('points') ?? '').trim().split(/\s+/).filter((p: string) => p !== '').length, 0),
  );
}

/** The chart series the page draws, as [chart id, series]. */
export const CHART_SERIES = [
  ['chart-soh', 'sohPct'],
  ['chart-soc', 'socPct'],
  ['chart-voltage', 'voltageV'],
  ['chart-temp', 'tempMinC'],
  ['chart-temp', 'tempMaxC'],
  ['chart-spread', 'cellSpreadMv'],
] as const;

/** Clicks a row's Proof button, saves the download into `dir` and returns the verdict, its text and the file. */
export async function prove(page: Page, dir: string, counter: number): Promise<{ verdict: string; text: string; file: string; filename: string }> {
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator(`button[data-proof="${counter}"]`).click()]);
  const saved = join(dir, download.suggestedFilename());
  await download.saveAs(saved);
  const verdict = page.locator('#proof-result .verdict');
  await verdict.waitFor();
  return { verdict: (await verdict.getAttribute('data-verdict')) ?? '', text: (await verdict.textContent()) ?? '', file: readFileSync(saved, 'utf8'), filename: download.suggestedFilename() };
}

/** The proof checks as `check:status`, in the order shown. */
export async function proofStatuses(page: Page): Promise<string[]> {
  return page.locator('#proof-checks tbody tr').evaluateAll((rows: DomEl[]) => rows.map((r) => `${r.getAttribute('data-check') ?? ''}:${r.getAttribute('data-status') ?? ''}`));
}

/** Clicks a download link (#download-csv, #download-json) and returns the saved file's name and text. */
export async function downloadVia(page: Page, dir: string, selector: string): Promise<{ filename: string; text: string }> {
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator(selector).click()]);
  const saved = join(dir, download.suggestedFilename());
  await download.saveAs(saved);
  return { filename: download.suggestedFilename(), text: readFileSync(saved, 'utf8') };
}
