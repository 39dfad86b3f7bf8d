/**
 * `packchain sim fleet` as an operator runs it: a child process that prints the endpoints as JSON,
 * keeps the packs running, and on SIGTERM stops them all, leaving no socat or dbus-daemon behind.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'packchain-sim-cli-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const leftovers = (): string => {
  try {
    return execFileSync('pgrep', ['-f', join(dir, 'state')], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
};

describe('packchain sim fleet', () => {
  it('prints endpoints as JSON and stops cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'cli/main.ts'), 'sim', 'fleet', '--serial', '2', '--ble', '1', '--seed', '9', '--dir', join(dir, 'state')], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => {
      child.on('exit', (code) => {
        r(code);
      });
    });
    const deadline = Date.now() + 30_000;
    while (!out.trimEnd().endsWith('}') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const summary = JSON.parse(out) as { devices: { kind: string; label: string; endpoint: string }[]; busAddress: string | null };
    expect(summary.devices.map((d) => d.kind)).toEqual(['serial', 'serial', 'ble']);
    expect(summary.devices[0]?.label).toBe('SIM-0009-0000');
    expect(summary.busAddress).toMatch(/^unix:path=/);
    expect(leftovers()).not.toBe('');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(err).toContain('SIGTERM, stopping 3 devices');
    await new Promise((r) => setTimeout(r, 300));
    expect(leftovers()).toBe('');
  });
});
