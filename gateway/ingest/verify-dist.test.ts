/**
 * The verification pool as shipped: compiled JavaScript, run by plain `node` without tsx. The sources
 * of protocol/ and gateway/ are transpiled with the TypeScript compiler API into a temp directory
 * laid out like dist/, and a child process starts a pool there: the worker must come from
 * verify-worker.js beside verify.js (the TS fallback would fail: there is no .ts and no tsx).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const out = mkdtempSync(join(tmpdir(), 'ingest-dist-'));

afterAll(() => {
  rmSync(out, { recursive: true, force: true });
});

function transpile(p: string): void {
  const js = ts.transpileModule(readFileSync(p, 'utf8'), {
    compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
    fileName: p,
  }).outputText;
  const target = join(out, relative(root, p)).replace(/\.ts$/, '.js');
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, js);
}

function transpileTree(dir: string): void {
  for (const name of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, name.name);
    if (name.isDirectory()) transpileTree(p);
    else if (name.name.endsWith('.ts') && !name.name.endsWith('.test.ts')) transpile(p);
  }
}

describe('VerifyPool from compiled output', () => {
  it('when run by plain node from .js files › loads verify-worker.js and verifies on the worker', () => {
    transpileTree(join(root, 'protocol'));
    transpile(join(root, 'gateway', 'errors.ts'));
    transpileTree(join(root, 'gateway', 'ingest'));
    writeFileSync(join(out, 'package.json'), '{"type":"module"}\n');
    symlinkSync(join(root, 'node_modules'), join(out, 'node_modules'));
    const script = join(out, 'check.mjs');
    writeFileSync(
      script,
      `import { VerifyPool } from './gateway/ingest/verify.js';
import { TestFactory } from './gateway/ingest/ingest-testkit.js';
const f = await TestFactory.create();
const trust = await f.trust();
const pack = await f.pack('PACK-DIST-1');
const device = trust.verifyChain(pack.chain, new Date());
const pool = await VerifyPool.start({ workers: 1, inlineBelow: 0 });
const verdicts = await Promise.all([pack.frame(1), pack.forged(2)].map((cose) => new Promise((r) => pool.submit({ cose, key: device, certSha256: device.certSha256 }, r))));
console.log(JSON.stringify({ verdicts: verdicts.map((v) => v.ok ? v.counter : v.code), stats: pool.stats }));
await pool.close();
`,
    );
    const r = spawnSync(process.execPath, [script], { cwd: out, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    const result = JSON.parse(r.stdout) as { verdicts: unknown[]; stats: { offloaded: number; workerFailures: number } };
    expect(result.verdicts).toEqual([1, 'COSE_SIGNATURE']);
    expect(result.stats).toMatchObject({ offloaded: 2, workerFailures: 0 });
  });
});
