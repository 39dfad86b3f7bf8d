/**
 * The service engineer's page in a real browser: Debian's Chromium driven by playwright-core
 * against a real fastify server on 127.0.0.1 that serves the page (registerWebPage) and the API of
 * api.md over fixtures made and signed with protocol code (web-testkit.ts). It enters the token,
 * searches, opens a pack, counts the chart vertices, reads the provenance and alarm tables, narrows
 * the time range, downloads proofs and checks the in-browser verdicts: "verified" for good bundles
 * (Ed25519 and P-256 devices), FAIL with the reason for a tampered one. Screenshots go to
 * test-artifacts/web/. Chromium is required (scripts/setup-machine.sh installs it): no skipping.
 */
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHART_SERIES, downloadVia, launchBrowser, proofStatuses, prove as proveIn, vertices as verticesIn, type BrowserSession, type DomEl } from './browser-testkit.js';
import { registerWebPage } from './plugin.js';
import { makeWebFixture, PACKS, registerFixtureApi, proofOf, STEP_MS, T0, TAMPERED_COUNTER, TOKEN, UNWITNESSED_TAIL, type WebFixture } from './web-testkit.js';

const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'web');

let app: FastifyInstance | undefined;
let base: string;
let browser: BrowserSession | undefined;
let page: Page;
let fixture: WebFixture;

beforeAll(async () => {
  fixture = await makeWebFixture();
  const server = Fastify();
  app = server;
  await registerWebPage(server);
  registerFixtureApi(server, fixture);
  base = await server.listen({ host: '127.0.0.1', port: 0 });
  browser = await launchBrowser(base, ARTIFACTS);
  page = browser.page;
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
});

const session = (): BrowserSession => {
  if (browser === undefined) throw new Error('page.test: the browser did not start');
  return browser;
};
const shot = (name: string): Promise<Buffer> => session().shot(name);
const vertices = (chartId: string, series: string): Promise<number> => verticesIn(page, chartId, series);
const prove = (counter: number): Promise<{ verdict: string; text: string; file: string }> => proveIn(page, session().profile, counter);

describe('the service engineer page in Chromium', () => {
  it('asks for the token, refuses a wrong one and finds both packs by prefix', async () => {
    await page.goto(base);
    await expect.poll(() => page.locator('#login').isVisible()).toBe(true);
    await page.getByLabel('Access token').fill('wrong-token');
    await page.getByRole('button', { name: 'Use token' }).click();
    await expect.poll(() => page.locator('#login-status').textContent()).toContain('refused the token');
    await page.getByLabel('Access token').fill(TOKEN);
    await page.getByRole('button', { name: 'Use token' }).click();
    await page.getByLabel('Serial prefix').fill('PK-2026');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.locator('#results-table tbody tr').count()).toBe(2);
    expect(await page.locator('#results-table tbody tr td:first-child').allTextContents()).toEqual(PACKS.map((p) => p.serial));
    await shot('01-search');
  });

  it('opens a pack and draws one chart vertex per frame, with alarm markers and tables', async () => {
    await page.locator(`button[data-serial="${PACKS[0].serial}"]`).click();
    await expect.poll(() => page.locator('#pack-status').textContent()).toContain(`${PACKS[0].frames} frame(s)`);
    for (const [chart, series] of CHART_SERIES) {
      expect(await vertices(chart, series), `${chart}/${series}`).toBe(PACKS[0].frames);
    }
    // Frames 12 and 30 carry alarms: a marker on every chart and a row in the alarms table.
    expect(await page.locator('#chart-soh .alarm-mark').evaluateAll((m: DomEl[]) => m.map((e) => e.getAttribute('data-counter')))).toEqual(['12', '30']);
    expect(await page.locator('#alarms-table tbody tr td:nth-child(4)').allTextContents()).toEqual(['overTemperature', 'cellOverVoltage, cellImbalance']);
    expect(await page.locator('#chart-spread desc').textContent()).toContain('spread from 8 to 68 mV');
    await shot('02-pack');
  });

  it('shows provenance: both gateways, per-frame origin, index, sightings and witnessed marks', async () => {
    const gateways = await page.locator('#gateways-table tbody tr').evaluateAll((rows: DomEl[]) => rows.map((r) => [...r.querySelectorAll('td')].slice(0, 2).map((c) => c.textContent)));
    expect(gateways).toEqual([
      ['packchain.gateway/line-3', '40'],
      ['packchain.gateway/line-4', '20'],
    ]);
    const frames = page.locator('#frames-table tbody tr');
    expect(await frames.count()).toBe(PACKS[0].frames);
    const first = await frames.nth(0).locator('td').allTextContents();
    expect(first.slice(3, 8)).toEqual(['packchain.gateway/line-3', '0', 'serial:/dev/ttyUSB0', '2', '✔ witnessed']);
    const last = await frames.nth(PACKS[0].frames - 1).locator('td').allTextContents();
    expect(last[6]).toBe('1');
    // Gateway A's newest entries are not covered by a witnessed checkpoint yet: no proof offered.
    const unwitnessed = await page.locator('#frames-table tbody tr td:nth-child(8)').allTextContents();
    expect(unwitnessed.filter((t) => t === 'not yet').length).toBeGreaterThan(0);
    expect(unwitnessed.filter((t) => t === 'not yet').length).toBeLessThanOrEqual(UNWITNESSED_TAIL);
    expect(await page.locator(`button[data-proof="${PACKS[0].frames - 1}"]`).count()).toBe(0);
  });

  it('downloads a proof bundle and verifies it in the browser: every check passes', async () => {
    const { verdict, text, file } = await prove(3);
    expect(verdict).toBe('verified');
    expect(text).toContain(`frame 3 of ${PACKS[0].serial}`);
    expect(file).toBe(proofOf(fixture, PACKS[0].serial, 3));
    const statuses = await proofStatuses(page);
    expect(statuses).toEqual(['trust:ok', 'bundle:ok', 'checkpoint:ok', 'witness:ok', 'inclusion:ok', 'chain:ok', 'cose:ok', 'serial:ok']);
    expect(await page.locator('#proof-checks tr[data-check="witness"] td').last().textContent()).toContain('cosigned by ledger.packchain.test');
    await shot('03-proof-verified');
  });

  it('shows FAIL with the reason for a tampered bundle', async () => {
    const { verdict, text } = await prove(TAMPERED_COUNTER);
    expect(verdict).toBe('fail');
    expect(text).toMatch(/FAIL — MERKLE_\w+/);
    const statuses = await proofStatuses(page);
    expect(statuses).toEqual(['trust:ok', 'bundle:ok', 'checkpoint:ok', 'witness:ok', 'inclusion:fail', 'chain:skipped', 'cose:skipped', 'serial:skipped']);
    await shot('04-proof-tampered');
  });

  it('narrows the charts to a time range', async () => {
    // Frames 10..19 by receive time: [T0 + 10 steps, T0 + 20 steps).
    const utc = (t: number): string => new Date(t).toISOString().slice(0, 19);
    await page.getByLabel('From', { exact: true }).fill(utc(T0 + 10 * STEP_MS));
    await page.getByLabel('Until', { exact: true }).fill(utc(T0 + 20 * STEP_MS));
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect.poll(() => page.locator('#pack-status').textContent()).toContain('10 frame(s)');
    expect(await vertices('chart-soh', 'sohPct')).toBe(10);
    expect(await page.locator('#chart-soh .alarm-mark').count()).toBe(1);
    await shot('05-range');
  });

  it('verifies a P-256 device’s proof and offers the CSV download', async () => {
    await page.getByLabel('From', { exact: true }).fill('');
    await page.getByLabel('Until', { exact: true }).fill('');
    await page.getByLabel('Serial prefix').fill('PK-2026-0002');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.locator('#results-table tbody tr').count()).toBe(1);
    await page.locator(`button[data-serial="${PACKS[1].serial}"]`).click();
    await expect.poll(() => page.locator('#pack-status').textContent()).toContain(`${PACKS[1].frames} frame(s)`);
    expect(await vertices('chart-voltage', 'voltageV')).toBe(PACKS[1].frames);
    const { verdict } = await prove(5);
    expect(verdict).toBe('verified');
    const csv = await downloadVia(page, session().profile, '#download-csv');
    const lines = csv.text.trim().split('\r\n');
    expect(csv.filename).toBe(`${PACKS[1].serial}-history.csv`);
    expect(lines).toHaveLength(PACKS[1].frames + 1);
    expect(lines[0]?.startsWith('serial,counter,deviceTime,receivedAt')).toBe(true);
    await shot('06-p256-pack');
    expect(session().pageErrors).toEqual([]);
  });
});
