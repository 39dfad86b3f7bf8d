/**
 * The README's first command runs `packchain demo`; this drives the real CLI entry point in a child
 * process (as a user would) and checks the protocol path end to end: certification, verified
 * frames, checkpoint, an offline-verified proof bundle, and a tampered bundle rejected.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const out = mkdtempSync(join(tmpdir(), 'packchain-demo-'));
afterAll(() => {
  rmSync(out, { recursive: true, force: true });
});

describe('packchain demo', () => {
  it('certifies packs, logs verified frames and writes a proof bundle that verifies offline', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'cli/main.ts'), 'demo', '--out', out], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.match(/station {3}PASS/g)).toHaveLength(3);
    expect(r.stdout).toContain('gateway   60 frames verified and logged; skipped noise: LINE_GARBAGE×9');
    expect(r.stdout).toMatch(/OK: PACK-0002 frame 5 .* witnessed by ledger\.demo/);
    expect(r.stdout).toContain('tampered bundle (index changed): rejected, MERKLE_PROOF');
    const bundle = readFileSync(join(out, 'PACK-0002-5.tlog-proof'), 'utf8');
    expect(bundle.startsWith('c2sp.org/tlog-proof@v1\n')).toBe(true);
    expect(existsSync(join(out, 'trust.json'))).toBe(true);
    // No private key material in what the demo prints or writes.
    expect(r.stdout).not.toMatch(/PRIVATE/);
    expect(readFileSync(join(out, 'keys.txt'), 'utf8')).not.toMatch(/PRIVATE/);
  });
});
