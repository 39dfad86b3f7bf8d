/**
 * The service engineer's page end to end: a real Ledger (embedded storage in a temp dir) behind the
 * real ledger server (createLedgerServer, with the web page), fed over HTTP by two test gateways
 * exactly as gateways sync (signed POST /v1/gateway/upload; ledger-testkit.ts): an Ed25519 pack
 * heard by both gateways and an ES256 pack heard by one, checkpoints the ledger accepts and
 * cosigns, a few frames after the checkpoint not witnessed yet, and one forged frame the ledger
 * rejects. Debian's Chromium (one launch, browser-testkit.ts) enters a token made by
 * ledger.createToken, searches, opens each pack, counts one chart vertex per history row (the count
 * read from the API), reads provenance and the rejected count, verifies proofs in the browser, sees
 * FAIL for a bundle tampered in flight (page.route rewrites the real server's response), and
 * downloads CSV/JSON through the page's links; the passport is fetched with the token. Screenshots
 * go to test-artifacts/web-e2e/.
 */
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeLeaf, decodeProofBundle, encodeLeaf, encodeProofBundle, encodeTrustBundle, type UploadRequest } from '../../protocol/index.js';
import { createLedgerServer } from '../http/server.js';
import { Ledger } from '../ledger.js';
import { embeddedStorage, T0, TestFactory, TestGateway, testWitness, type TestPack, type TestStorage } from '../ledger-testkit.js';
import type { HistoryRow, PackDetail, PacksResponse } from './api-types.js';
import { CHART_SERIES, downloadVia, launchBrowser, proofStatuses, prove, vertices, type BrowserSession, type DomEl } from './browser-testkit.js';

const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'web-e2e');
/** Frames of the Ed25519 pack (both gateways hear the first SHARED) and of the ES256 pack (gateway north only). */
const A_FRAMES = 30;
const SHARED = 12;
const B_FRAMES = 18;
/** Frames north logs after its witnessed checkpoint: shown "not yet", no proof. */
const TAIL = 3;
/** Counter of the Ed25519 pack's forged frame (signed by another key under the pack's kid). */
const FORGED = 500;
/** The frame whose proof is tampered in flight. */
const TAMPERED = 5;

let storage: TestStorage | undefined;
let ledger: Ledger | undefined;
let app: FastifyInstance | undefined;
let browser: BrowserSession | undefined;
let base: string;
let token: string;
let page: Page;
let a: TestPack;
let b: TestPack;
const north = new TestGateway('north', 71);
const south = new TestGateway('south', 72);

/** Uploads as a gateway does: POST /v1/gateway/upload, CBOR body, signed Authorization. */
async function upload(gw: TestGateway, req: UploadRequest): Promise<{ stored: number; rejected: number; cosigned: string | null; rejects: { code: string }[] }> {
  const body = gw.body(req);
  const res = await fetch(`${base}/v1/gateway/upload`, {
    method: 'POST',
    headers: { 'content-type': 'application/cbor', authorization: gw.authorize('POST', '/v1/gateway/upload', body, T0) },
    body,
  });
  const json = (await res.json()) as { stored: number; rejected: number; cosigned: string | null; rejects: { code: string }[] };
  if (res.status !== 200) throw new Error(`page-e2e: upload refused: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** GET an API path with the token. */
async function api(path: string): Promise<Response> {
  const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status, path).toBe(200);
  return res;
}

async function historyOf(serial: string): Promise<HistoryRow[]> {
  return ((await (await api(`/api/v1/packs/${serial}/history`)).json()) as { rows: HistoryRow[] }).rows;
}

const session = (): BrowserSession => {
  if (browser === undefined) throw new Error('page-e2e: the browser did not start');
  return browser;
};

beforeAll(async () => {
  storage = embeddedStorage();
  const factory = await TestFactory.create('Web E2E');
  a = await factory.pack('PK-2026-0101', 'Ed25519');
  b = await factory.pack('PK-2026-0102', 'ES256');
  const bundle = await factory.bundle();
  ledger = await Ledger.open({ storage: storage.options, witness: testWitness(), trust: await factory.trust(), clock: () => T0, verifyThreads: 1 });
  await ledger.enrollGateway(north.vkey, 'north');
  await ledger.enrollGateway(south.vkey, 'south');
  token = await ledger.createToken('web-e2e');
  app = await createLedgerServer({ ledger, logger: pino({ level: 'silent' }), trustBundle: () => encodeTrustBundle(bundle), now: () => T0 });
  base = await app.listen({ host: '127.0.0.1', port: 0 });

  // north hears both packs (one forged frame among them); south hears the Ed25519 pack's first frames too.
  const framesA = Array.from({ length: A_FRAMES }, (_, i) => a.frame(i, { soh: 990 - i, soc: 300 + ((i * 53) % 600), voltage: 51_000 + i * 20, alarms: i === 9 ? 0b1 : 0 }));
  for (let i = 0; i < A_FRAMES - TAIL; i++) {
    north.append(a, framesA[i] as Uint8Array);
    if (i < B_FRAMES) north.append(b, b.frame(i, { soh: 970 - i, tempMax: 250 + i * 5 }));
    if (i === 4) north.append(a, a.forged(FORGED));
  }
  for (let i = 0; i < SHARED; i++) south.append(a, framesA[i] as Uint8Array);
  const witnessed = north.size;
  const first = await upload(north, north.request(0, witnessed, [a, b], { proofFrom: 0 }));
  expect(first).toMatchObject({ stored: witnessed, rejected: 1 });
  expect(first.rejects.map((r) => r.code)).toEqual(['COSE_SIGNATURE']);
  expect(first.cosigned).toContain('— packchain.ledger/test');
  // Frames logged after north's checkpoint: uploaded, but no checkpoint covers them yet.
  for (let i = A_FRAMES - TAIL; i < A_FRAMES; i++) north.append(a, framesA[i] as Uint8Array);
  expect(await upload(north, north.request(witnessed, north.size, [a]))).toMatchObject({ stored: TAIL, rejected: 0, cosigned: null });
  expect(await upload(south, south.request(0, south.size, [a], { proofFrom: 0 }))).toMatchObject({ stored: SHARED, rejected: 0 });

  browser = await launchBrowser(base, ARTIFACTS);
  page = browser.page;
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await ledger?.close();
  await storage?.drop();
});

async function openPack(serial: string, rows: number): Promise<void> {
  await page.locator(`button[data-serial="${serial}"]`).click();
  await expect.poll(() => page.locator('#pack-status').textContent()).toContain(`${rows} frame(s)`);
}

async function fact(name: string): Promise<string | undefined> {
  const facts = await page.locator('#pack-facts').evaluate((dl: DomEl) => [...dl.querySelectorAll('dt, dd')].map((e) => e.textContent ?? ''));
  const i = facts.indexOf(name);
  return i < 0 ? undefined : facts[i + 1];
}

describe('the service engineer page against the real ledger, in Chromium', () => {
  it('takes a token made by the ledger and finds both packs', async () => {
    await page.goto(base);
    await page.getByLabel('Access token').fill(token);
    await page.getByRole('button', { name: 'Use token' }).click();
    await page.getByLabel('Serial prefix').fill('PK-2026-01');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.locator('#results-table tbody tr').count()).toBe(2);
    const { packs } = (await (await api('/api/v1/packs?prefix=PK-2026-01')).json()) as PacksResponse;
    expect(await page.locator('#results-table tbody tr td:first-child').allTextContents()).toEqual(packs.map((p) => p.serial));
    expect(packs.map((p) => p.serial)).toEqual([a.serial, b.serial]);
    await session().shot('01-search');
  });

  it('Ed25519 pack: one chart vertex per history row, both gateways, the rejected frame, the unwitnessed tail', async () => {
    const rows = await historyOf(a.serial);
    expect(rows).toHaveLength(A_FRAMES);
    await openPack(a.serial, rows.length);
    for (const [chart, series] of CHART_SERIES) expect(await vertices(page, chart, series), `${chart}/${series}`).toBe(rows.length);
    expect(await page.locator('#chart-soh .alarm-mark').evaluateAll((m: DomEl[]) => m.map((e) => e.getAttribute('data-counter')))).toEqual(['9']);
    expect(await fact('Rejected frames')).toBe('1');
    expect(await fact('Key')).toContain('Ed25519');
    const gateways = await page.locator('#gateways-table tbody tr').evaluateAll((trs: DomEl[]) => trs.map((r) => [...r.querySelectorAll('td')].slice(0, 2).map((c) => c.textContent)));
    expect(gateways).toEqual([
      [north.origin, String(A_FRAMES)],
      [south.origin, String(SHARED)],
    ]);
    const detail = (await (await api(`/api/v1/packs/${a.serial}`)).json()) as PackDetail;
    expect(detail.rejected).toBe(1);
    const frames = page.locator('#frames-table tbody tr');
    expect(await frames.count()).toBe(rows.length);
    // Per-frame provenance as the ledger reports it: gateway and log index of the first sighting.
    const origins = await frames.evaluateAll((trs: DomEl[]) => trs.map((r) => [...r.querySelectorAll('td')].slice(3, 5).map((c) => c.textContent ?? '').join('#')));
    expect(origins).toEqual(rows.map((r) => `${r.origin}#${String(r.index)}`));
    const sightings = await page.locator('#frames-table tbody tr td:nth-child(7)').allTextContents();
    expect(sightings).toEqual(rows.map((_, i) => (i < SHARED ? '2' : '1')));
    const witnessed = await page.locator('#frames-table tbody tr td:nth-child(8)').allTextContents();
    expect(witnessed).toEqual(rows.map((_, i) => (i < A_FRAMES - TAIL ? '✔ witnessed' : 'not yet')));
    expect(await page.locator('button[data-proof]').count()).toBe(A_FRAMES - TAIL);
    expect(await page.locator(`button[data-proof="${A_FRAMES - 1}"]`).count()).toBe(0);
    await session().shot('02-pack-ed25519');
  });

  it('downloads a proof and verifies it in the browser: every check passes', async () => {
    const { verdict, text, file, filename } = await prove(page, session().profile, 3);
    expect(verdict).toBe('verified');
    expect(text).toContain(`frame 3 of ${a.serial}`);
    expect(filename).toBe(`${a.serial}-3.proof`);
    expect(file).toBe(await (await api(`/api/v1/packs/${a.serial}/frames/3/proof`)).text());
    expect(await proofStatuses(page)).toEqual(['trust:ok', 'bundle:ok', 'checkpoint:ok', 'witness:ok', 'inclusion:ok', 'chain:ok', 'cose:ok', 'serial:ok']);
    expect(await page.locator('#proof-checks tr[data-check="witness"] td').last().textContent()).toContain('packchain.ledger/test');
    await session().shot('03-proof-verified');
  });

  it('shows FAIL with the reason when the real server’s bundle is tampered in flight', async () => {
    const path = `**/api/v1/packs/${a.serial}/frames/${TAMPERED}/proof`;
    let rewritten = 0;
    await page.route(path, async (route) => {
      const res = await route.fetch();
      const bundle = decodeProofBundle(await res.text());
      const leaf = decodeLeaf(bundle.leaf);
      rewritten++;
      // Someone "corrects" the receive time: the leaf no longer hashes to the one the log holds.
      await route.fulfill({ response: res, body: encodeProofBundle({ ...bundle, leaf: encodeLeaf({ ...leaf, receivedAt: leaf.receivedAt + 3_600_000 }) }) });
    });
    try {
      const { verdict, text } = await prove(page, session().profile, TAMPERED);
      expect(rewritten).toBe(1);
      expect(verdict).toBe('fail');
      expect(text).toMatch(/FAIL — MERKLE_\w+/);
      expect(await proofStatuses(page)).toEqual(['trust:ok', 'bundle:ok', 'checkpoint:ok', 'witness:ok', 'inclusion:fail', 'chain:skipped', 'cose:skipped', 'serial:skipped']);
      await session().shot('04-proof-tampered');
    } finally {
      await page.unroute(path);
    }
  });

  it('downloads the history as JSON and CSV through the page’s links', async () => {
    const rows = await historyOf(a.serial);
    const json = await downloadVia(page, session().profile, '#download-json');
    expect(json.filename).toBe(`${a.serial}-history.json`);
    const parsed = JSON.parse(json.text) as { serial: string; rows: HistoryRow[]; next: number | null };
    expect(parsed).toEqual({ serial: a.serial, rows, next: null });
    const csv = await downloadVia(page, session().profile, '#download-csv');
    expect(csv.filename).toBe(`${a.serial}-history.csv`);
    const lines = csv.text.trim().split('\r\n');
    expect(lines).toHaveLength(rows.length + 1);
    const header = lines[0]?.split(',') ?? [];
    expect(header.slice(0, 4)).toEqual(['serial', 'counter', 'deviceTime', 'receivedAt']);
    expect(lines.slice(1).map((l) => l.split(',')[header.indexOf('counter')])).toEqual(rows.map((r) => String(r.counter)));
  });

  it('fetches the battery passport with the token', async () => {
    const passport = (await (await api(`/api/v1/packs/${a.serial}/passport`)).json()) as { serial: string; frames: { considered: number }; identifiers: { certificateSerial: string | null } };
    expect(passport.serial).toBe(a.serial);
    expect(passport.frames.considered).toBe(A_FRAMES);
    expect(passport.identifiers.certificateSerial).toBe(a.certSerialHex);
    const refused = await fetch(`${base}/api/v1/packs/${a.serial}/passport`);
    expect(refused.status).toBe(401);
  });

  it('ES256 pack: one vertex per row, one gateway, no rejects, a proof that verifies', async () => {
    const rows = await historyOf(b.serial);
    expect(rows).toHaveLength(B_FRAMES);
    await page.getByLabel('Serial prefix').fill(b.serial);
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.locator('#results-table tbody tr').count()).toBe(1);
    await openPack(b.serial, rows.length);
    for (const [chart, series] of CHART_SERIES) expect(await vertices(page, chart, series), `${chart}/${series}`).toBe(rows.length);
    expect(await fact('Rejected frames')).toBe('0');
    expect(await fact('Key')).toContain('ES256');
    expect(await page.locator('#gateways-table tbody tr td:first-child').allTextContents()).toEqual([north.origin]);
    const { verdict } = await prove(page, session().profile, 7);
    expect(verdict).toBe('verified');
    expect(await proofStatuses(page)).toEqual(['trust:ok', 'bundle:ok', 'checkpoint:ok', 'witness:ok', 'inclusion:ok', 'chain:ok', 'cose:ok', 'serial:ok']);
    await session().shot('05-pack-es256');
    expect(session().pageErrors).toEqual([]);
  });
});
