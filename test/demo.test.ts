/**
 * The README's first command: `packchain demo`, spawned as a user runs it (the CLI entry point in
 * a child process, through tsx). With --once it must provision every simulated pack through the
 * station (PASS label lines), show a history table read from the ledger, write a proof bundle that
 * verifies offline — checked here again, independently, from the public files the demo leaves
 * (trust bundle, gateway key, ledger witness key required) — show a tampered copy rejected, exit 0
 * and leave no socat, dbus-daemon or other child behind. Without --once it keeps serving (the web
 * page answers, frames keep arriving) until SIGINT, then stops cleanly with exit 0.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeTrustBundle, parseVerifierKey, TrustStore, verifyProofBundle } from '../protocol/index.js';
import { until } from './gateway-ingest-testkit.js';

const ROOT = resolve(import.meta.dirname, '..');
const base = mkdtempSync(join(tmpdir(), 'packchain-demo-test-'));
afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

interface Run {
  readonly child: ChildProcess;
  out: string;
  err: string;
  code: number | null | undefined;
}

function demo(args: readonly string[]): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/main.ts'), 'demo', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const run: Run = { child, out: '', err: '', code: undefined };
  child.stdout.on('data', (b: Buffer) => (run.out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (run.err += b.toString()));
  child.on('exit', (code) => {
    run.code = code;
  });
  return run;
}

/** Processes whose command line names the demo directory (socat ptys, dbus-daemon, its watchdog, the demo). */
function leftovers(dir: string): string {
  try {
    return execFileSync('pgrep', ['-af', dir], { encoding: 'utf8' }).trim();
  } catch {
    return ''; // pgrep exits 1 when nothing matches
  }
}

/** The value after `tag` at the start of a line of the transcript. */
function field(out: string, re: RegExp): string {
  const m = re.exec(out);
  if (!m?.[1]) throw new Error(`demo output lacks ${String(re)}:\n${out}`);
  return m[1];
}

describe('packchain demo', () => {
  it('with --once provisions every pack through the station, shows the ledger history and a proof that verifies offline, then exits 0 leaving nothing running', async () => {
    const dir = join(base, 'once');
    const run = demo(['--once', '--dir', dir]);
    await until(() => run.code !== undefined, 'the demo to exit', 170_000);
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    const out = run.out;

    // Every pack of the fleet (3 serial, 2 BLE by default) has a station PASS label line.
    const labels = [...out.matchAll(/^(?:fleet {5}| {10})(PK-\d{4}-\d{4}) {2}(serial|ble) +PC-/gm)].map((m) => ({ serial: m[1] ?? '', kind: m[2] }));
    expect(labels.map((l) => l.kind)).toEqual(['serial', 'serial', 'serial', 'ble', 'ble']);
    for (const l of labels) expect(out).toMatch(new RegExp(`^(station| {7}) {3}PASS {2}${l.serial} {2}(ES256|Ed25519) {2}key [0-9a-f]{4}(-[0-9a-f]{4}){3} {2}cert [0-9A-F]+ {2}\\(${l.kind}, `, 'm'));

    // The ledger holds frames of every pack, and one pack's history table was read from its API.
    for (const l of labels) expect(out).toMatch(new RegExp(`^ {10}${l.serial} {2}${l.kind} +[1-9]\\d* `, 'm'));
    expect(out).toMatch(/^history {3}PK-2026-0000, newest \d+ of \d+ frames \(GET \/api\/v1\/packs\/PK-2026-0000\/history\)$/m);
    expect(out).toMatch(/^ {10}counter {2}deviceTime +socPct {2}sohPct {2}voltageV/m);
    expect(out).toMatch(/^ {10}\d+ +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z +[\d.]+ +[\d.]+ +[\d.]+ .* true$/m);
    expect(out).toMatch(/cosigned by the ledger: sync lag 0\n {10}packchain\.gateway\/demo-gw\n/);

    // The proof bundle: verified and witnessed as printed, and again here from the public files alone.
    expect(out).toMatch(/^ {10}verified: PK-2026-0000 frame \d+ .* witnessed by packchain\.ledger\/demo$/m);
    expect(out).toContain('tampered copy (leaf index changed): rejected, MERKLE_PROOF');
    const proofPath = field(out, /^proof {5}(\S+\.proof) /m);
    const firstLine = (f: string): string => (readFileSync(join(dir, f), 'utf8').split('\n')[0] ?? '').trim();
    const v = verifyProofBundle(readFileSync(proofPath, 'utf8'), {
      trust: await TrustStore.create(decodeTrustBundle(readFileSync(join(dir, 'trust-bundle.json'), 'utf8'))),
      logs: [parseVerifierKey(firstLine('gateway.vkey'))],
      witnesses: [parseVerifierKey(firstLine('ledger.vkey'))],
      requiredWitnesses: 1,
    });
    expect(v.device.packSerial).toBe('PK-2026-0000');
    expect(v.origin).toBe('packchain.gateway/demo-gw');

    // The page was served, and is no longer: everything stopped.
    const url = field(out, /^web {7}(http:\/\/127\.0\.0\.1:\d+)\/ /m);
    await expect(fetch(`${url}/`)).rejects.toThrow();
    expect(out).toMatch(/^stopped {3}gateway packchain\.gateway\/demo-gw \(final checkpoint at \d+ entries\)$/m);
    expect(out).toContain('fleet (packs saved, socat and dbus-daemon stopped)');
    expect(leftovers(dir)).toBe('');
    // No private key material in what it prints.
    expect(out).not.toMatch(/PRIVATE/);
  }, 180_000);

  it('keeps serving the page and ingesting frames until SIGINT, then stops cleanly with exit 0 and nothing left running', async () => {
    const dir = join(base, 'live');
    // Hold the default port if we can, so the demo must move to a free one (and say so).
    const holder: Server = createServer();
    await new Promise<void>((done) => {
      holder.once('error', () => { done(); });
      holder.listen(8470, '127.0.0.1', () => { done(); });
    });
    let run: Run | undefined;
    try {
      run = demo(['--dir', dir]);
      const r = run;
      await until(() => r.out.includes('Ctrl-C') || r.code !== undefined, 'the demo to be ready', 170_000);
      expect(r.code).toBeUndefined();
      expect(r.out).toContain('(127.0.0.1:8470 is in use)');
      const url = field(r.out, /^web {7}(http:\/\/127\.0\.0\.1:\d+)\/ /m);
      const token = field(r.out, /token: (\S+)$/m);

      const page = await fetch(`${url}/`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await page.text()).toMatch(/<script[^>]+src="\/assets\/app-[^"]+\.js"/);

      // Frames keep reaching the ledger after the summary.
      const frames = async (): Promise<number> => {
        const res = await fetch(`${url}/api/v1/packs`, { headers: { authorization: `Bearer ${token}` } });
        const b = (await res.json()) as { packs: { frames: number }[] };
        return b.packs.reduce((n, p) => n + p.frames, 0);
      };
      const before = await frames();
      await until(async () => (await frames()) > before, 'more frames in the ledger', 60_000);

      r.child.kill('SIGINT');
      await until(() => r.code !== undefined, 'the demo to exit after SIGINT', 30_000);
      expect(r.code).toBe(0);
      expect(r.err).toBe('');
      expect(r.out).toMatch(/SIGINT: stopping\n(.|\n)*^stopped {3}gateway /m);
      expect(leftovers(dir)).toBe('');
    } finally {
      if (run?.code === undefined) run?.child.kill('SIGKILL');
      await new Promise<void>((done) => holder.close(() => { done(); }));
    }
  }, 240_000);
});
