/**
 * `packchain sim fleet --faults` as an operator runs it: a bad spec is refused before anything starts,
 * with a message naming the bad kind or value; a good one runs the seeded schedule, writes one
 * faults.jsonl record per injection, reproducibly from --seed, and still stops cleanly on SIGTERM.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'packchain-sim-faults-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  out: string;
  err: string;
}

/** Runs `packchain sim fleet <args>`; SIGTERM after `runMs` once the endpoints are printed (never, if it exits first). */
async function simFleet(args: string[], runMs: number): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'cli/main.ts'), 'sim', 'fleet', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => {
    child.on('exit', (code) => {
      r(code);
    });
  });
  const state = { exited: false };
  void exited.then(() => (state.exited = true));
  const deadline = Date.now() + 30_000;
  while (!state.exited && !out.trimEnd().endsWith('}') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (!state.exited) {
    await new Promise((r) => setTimeout(r, runMs));
    child.kill('SIGTERM');
  }
  return { code: await exited, out, err };
}

interface Rec {
  label: string;
  kind: string;
  applied: boolean;
  count: number;
  detail: Record<string, unknown>;
}

const leftovers = (state: string): string => {
  try {
    return execFileSync('pgrep', ['-f', state], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
};

const records = (state: string): Rec[] =>
  readFileSync(join(state, 'faults.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Rec);

describe('packchain sim fleet --faults', () => {
  it.each([
    ['unplug=0.5,bogus=1', 'unknown fault kind "bogus"'],
    ['garbage=lots', 'rate of garbage must be a number from 0 to 600'],
    ['unplug', '"unplug" has no rate'],
  ])('refuses --faults %s before starting anything', async (spec, message) => {
    const state = join(dir, `bad-${spec.length}`);
    const run = await simFleet(['--serial', '1', '--dir', state, '--faults', spec], 0);
    expect(run.code).toBe(1);
    expect(run.err).toContain(`option '--faults <spec>' argument '${spec}' is invalid`);
    expect(run.err).toContain(message);
    expect(run.out).toBe('');
    expect(existsSync(state)).toBe(false);
  });

  it('runs the seeded schedule: records per injection, the same faults for the same seed, nothing left behind', async () => {
    const runs: Rec[][] = [];
    for (const n of [1, 2]) {
      const state = join(dir, `run-${n}`);
      const run = await simFleet(['--serial', '1', '--ble', '1', '--seed', '5', '--dir', state, '--faults', 'garbage=600,ble-drop=30'], 2_000);
      expect(run.code).toBe(0);
      expect(JSON.parse(run.out)).toMatchObject({ faults: { rates: { garbage: 600, 'ble-drop': 30 }, records: join(state, 'faults.jsonl') } });
      expect(run.err).toMatch(/sim fleet: faults \{"total":\d+/);
      runs.push(records(state));
      await new Promise((r) => setTimeout(r, 300));
      expect(leftovers(state)).toBe('');
    }
    const [a, b] = runs as [Rec[], Rec[]];
    const garbage = (rs: Rec[]) => rs.filter((r) => r.kind === 'garbage' && r.label === 'SIM-0005-0000').map((r) => r.detail);
    expect(garbage(a).length).toBeGreaterThan(5);
    const n = Math.min(garbage(a).length, garbage(b).length);
    expect(garbage(b).slice(0, n)).toEqual(garbage(a).slice(0, n));
    // Garbage is scheduled on both packs (a stray chunk on BLE), ble-drop on the BLE pack only.
    expect(new Set(a.map((r) => `${r.kind}@${r.label}`))).not.toContain('ble-drop@SIM-0005-0000');
    expect(a.filter((r) => r.kind === 'garbage' && r.applied).map((r) => r.count)).toEqual(
      a.filter((r) => r.kind === 'garbage' && r.applied).map((r) => a.filter((x) => x.kind === 'garbage' && x.applied && x.label === r.label && a.indexOf(x) <= a.indexOf(r)).length),
    );
  });
});
