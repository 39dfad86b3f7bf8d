// Line mode end to end (issue 5 item 4): the station's real CA and registry, ports found by glob,
// packs on real socat ptys — hw-sim packs provisioned concurrently from a serial pattern, and
// scripted packs for a failure, an unplug and a replug at one port with serials from a scanner file.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPtyPair, Fleet, type PtyPair } from '../hw-sim/index.js';
import { type AttemptOutcome, type LineOptions, type ProgressEvent, provisionPack, Registry, runLine, serialsFromFile, serialsFromPattern, StationCa } from '../provisioning/index.js';
import { FakePack, type FakePackOptions } from '../provisioning/device-testkit.js';

const PASS = 'line passphrase for tests';
const root = mkdtempSync(join(tmpdir(), 'prov-line-it-'));
let ca: StationCa;
let registry: Registry;
const stops: (() => Promise<void>)[] = [];

beforeAll(async () => {
  await StationCa.init({ dir: join(root, 'station'), linePassphrase: PASS });
  ca = await StationCa.open({ dir: join(root, 'station'), passphrase: PASS });
  registry = await Registry.open(join(root, 'station', 'registry.db'));
});

afterAll(async () => {
  for (const s of stops.reverse()) await s();
  await registry.close();
  rmSync(root, { recursive: true, force: true });
});

/** Captures what line mode prints. */
function screen(isTTY = false): { out: LineOptions['out']; text: () => string } {
  let text = '';
  return { out: { write: (t: string) => (text += t), isTTY }, text: () => text };
}

type Event = { port: string; what: 'start' | 'end' | ProgressEvent['step'] };

/** provisionPack bound to the station, logging starts, steps and ends in order. */
function attemptWith(events: Event[], extra: (ev: ProgressEvent) => void = () => undefined): LineOptions['attempt'] {
  return async (port, serial, onProgress) => {
    events.push({ port, what: 'start' });
    const out = await provisionPack({
      ca, registry, port, serial, station: 'line-2', operator: 'tester',
      onProgress: (ev) => {
        events.push({ port, what: ev.step });
        onProgress(ev);
        extra(ev);
      },
    });
    events.push({ port, what: 'end' });
    return out;
  };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function fakeAt(dir: string, name: string, opts: FakePackOptions = {}): Promise<{ pty: PtyPair; fake: FakePack }> {
  const pty = await createPtyPair({ dir, name });
  const fake = await FakePack.attach(pty.devicePath, opts);
  stops.push(async () => {
    await fake.close();
    await pty.stop();
  });
  return { pty, fake };
}

describe('runLine', () => {
  describe('with three new hw-sim packs and a serial pattern', () => {
    it('provisions them concurrently, one serial each, and exits 0 after --count 3', async () => {
      const fleet = await Fleet.start({ dir: join(root, 'fleet'), serial: 3, ble: 0, seed: 11, periodMs: 1000, tickMs: 100 });
      stops.push(() => fleet.stop());
      const events: Event[] = [];
      const s = screen();
      const summary = await runLine({
        ports: join(root, 'fleet', 'pty', '*.host'),
        serials: serialsFromPattern('LN-{0001}', registry, () => undefined),
        count: 3,
        pollMs: 100,
        attempt: attemptWith(events),
        out: s.out,
      });
      expect(summary).toMatchObject({ attempts: 3, passed: 3, failed: {}, exitCode: 0 });
      const ports = fleet.endpoints().map((e) => e.endpoint);
      expect(summary.outcomes.map((o) => [o.port, o.serial]).sort()).toEqual(ports.map((p, i) => [p, `LN-000${i + 1}`]));
      for (const serial of ['LN-0001', 'LN-0002', 'LN-0003']) expect((await registry.activeBySerial(serial))?.result).toBe('PASS');
      // Concurrent: the second pack started before the first finished.
      const startOf2 = events.findIndex((e) => e.what === 'start' && e.port === ports[1]);
      const endOf1 = events.findIndex((e) => e.what === 'end' && e.port === ports[0]);
      expect(startOf2).toBeLessThan(endOf1);
      const text = s.text();
      expect(text.match(/ {2}PASS {2}LN-000\d {2}ES256 {2}key /g)).toHaveLength(3);
      expect(text).toContain('summary: 3 packs, 3 PASS, 0 FAIL');
      expect(text).toMatch(/time per pack: mean \d+\.\d\d s, max \d+\.\d\d s/);
    });
  });

  describe('with a scanner file, a failing pack, and a port where one pack is swapped for another', () => {
    it('skips used serials, reuses a failed serial, waits for the unplug, and exits 3', async () => {
      const dir = join(root, 'bench-a');
      mkdirSync(dir);
      const a = await fakeAt(dir, 'a');
      await fakeAt(dir, 'b', { badPop: true });
      const file = join(root, 'serials.txt');
      writeFileSync(file, 'LN-0001\nSC-0001\nSC-0002\nSC-0003\n');
      const warnings: string[] = [];
      const events: Event[] = [];
      const s = screen();
      const run = runLine({
        ports: join(dir, '*.host'),
        serials: serialsFromFile(file, registry, (w) => warnings.push(w)),
        count: 3,
        pollMs: 100,
        attempt: attemptWith(events),
        out: s.out,
      });
      await until(() => events.filter((e) => e.what === 'end').length === 2, 'both packs to finish');
      // Port b's pack stays plugged after its FAIL: no second attempt there. Swap the pack at port a.
      await a.fake.close();
      await a.pty.stop();
      await until(() => /a\.host {2}unplugged/.test(s.text()), 'the unplug to show');
      await a.pty.restart();
      await FakePack.attach(a.pty.devicePath).then((fresh) => stops.push(() => fresh.close()));
      const summary = await run;
      expect(summary).toMatchObject({ attempts: 3, passed: 2, failed: { POP_FAILED: 1 }, exitCode: 3 });
      const byPort = summary.outcomes.map((o: AttemptOutcome) => [o.port.endsWith('a.host') ? 'a' : 'b', o.serial, o.result]);
      expect(byPort.slice(0, 2).sort()).toEqual([
        ['a', 'SC-0001', 'PASS'],
        ['b', 'SC-0002', 'FAIL'],
      ]);
      expect(byPort[2]).toEqual(['a', 'SC-0002', 'PASS']); // the failed pack's serial went to the next pack
      expect(warnings).toEqual([expect.stringMatching(/^serial LN-0001 skipped: it already has an active certificate/)]);
      expect(s.text()).toContain('summary: 3 packs, 2 PASS, 1 FAIL (POP_FAILED 1)');
    });
  });

  describe('when stopped (SIGINT) while an attempt is in flight', () => {
    it('finishes the attempt, then prints the summary; on a terminal it redraws lines in place', async () => {
      const dir = join(root, 'bench-b');
      mkdirSync(dir);
      await fakeAt(dir, 'c');
      const stop = new AbortController();
      const s = screen(true);
      const summary = await runLine({
        ports: join(dir, '*.host'),
        serials: serialsFromPattern('ST-{01}', registry, () => undefined),
        pollMs: 100,
        attempt: attemptWith([], (ev) => {
          if (ev.step === 'keygen') stop.abort();
        }),
        out: s.out,
        signal: stop.signal,
      });
      expect(summary).toMatchObject({ attempts: 1, passed: 1, exitCode: 0 });
      expect(s.text()).toContain('stopping: finishing 1 attempt in progress');
      expect(s.text()).toContain('\x1b[1A\x1b[J'); // the port's line was redrawn in place
      expect(s.text()).toMatch(/c\.host {2}PASS {2}ST-01 /);
      expect(s.text()).toContain('summary: 1 pack, 1 PASS, 0 FAIL');
    });
  });
});
