/**
 * Architecture gate (DESIGN.md "Data path", STYLE.md habit 1): protocol/ imports nothing of ours;
 * hw-sim, provisioning, gateway and ledger import only protocol/, and only through its index.ts.
 * Only cli/ wires modules together. A violation fails the test command.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MODULES = ['protocol', 'hw-sim', 'provisioning', 'gateway', 'ledger'] as const;

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (/\.(ts|mts|js|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

/** Every module specifier in static imports/exports and dynamic import() calls. */
export function specifiers(source: string): string[] {
  const re = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g;
  const out: string[] = [];
  for (const m of source.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3] ?? '');
  return out;
}

/** Violations for one file of module `mod`, as "file: specifier (why)". */
function violations(mod: string, file: string): string[] {
  const bad: string[] = [];
  for (const spec of specifiers(readFileSync(file, 'utf8'))) {
    if (!spec.startsWith('.')) continue; // packages and node: builtins are fine
    const target = relative(root, resolve(dirname(file), spec));
    const targetMod = target.split(sep)[0] ?? '';
    if (targetMod === mod) continue;
    const where = `${relative(root, file)}: ${spec}`;
    if (mod === 'protocol') bad.push(`${where} (protocol imports nothing of ours)`);
    else if (targetMod !== 'protocol') bad.push(`${where} (${mod} may import only protocol)`);
    else if (!/^protocol\/index\.(js|ts)$/.test(target.split(sep).join('/'))) {
      bad.push(`${where} (import protocol through protocol/index.js)`);
    }
  }
  return bad;
}

describe('module layering', () => {
  for (const mod of MODULES) {
    it(`${mod} imports only what its layer allows`, () => {
      const files = tsFiles(join(root, mod));
      expect(files.length).toBeGreaterThan(0);
      expect(files.flatMap((f) => violations(mod, f))).toEqual([]);
    });
  }

  it('detects a forbidden import (the check itself can fail)', () => {
    expect(specifiers(`import { x } from '../gateway/index.js';\nconst y = await import('../ledger/a.js');`)).toEqual([
      '../gateway/index.js',
      '../ledger/a.js',
    ]);
  });
});
