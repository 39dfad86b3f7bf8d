/**
 * Builds the web page's assets in memory with esbuild, once, when the ledger service starts
 * (docs/service-engineer.md "How the page is built"): the page script (page/main.ts), the proof
 * verifier (verifier.ts — protocol's verifyProofBundle for the browser), the stylesheet and
 * index.html. The verifier bundle resolves protocol/crypto.ts to crypto-browser.ts and
 * `node:crypto` to node-crypto-browser.ts and injects a `Buffer.from` stand-in, so the browser
 * runs the same verification code as the servers on @noble/curves and WebCrypto. Any other Node
 * builtin reached from the browser code fails the build (esbuild cannot resolve it for the
 * browser platform), so a server-only import on the verify path is caught at start-up and in tests.
 * Output names carry a content hash, so assets are cached forever and index.html never.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

export interface WebAsset {
  readonly body: Buffer;
  readonly contentType: string;
  /** Strong ETag (quoted SHA-256 prefix of the body). */
  readonly etag: string;
  /** Hashed name: cache forever. */
  readonly immutable: boolean;
}

export interface WebAssets {
  /** index.html. */
  readonly index: WebAsset;
  /** By file name under /assets/ (e.g. app-3KQ2M7VA.js). */
  readonly files: ReadonlyMap<string, WebAsset>;
  /** Names of the three built files, for index.html and tests. */
  readonly names: { readonly app: string; readonly verifier: string; readonly style: string };
  readonly buildMs: number;
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

/**
 * The directory holding page/, verifier.ts and the browser stand-ins: this file's own directory
 * when run from source (tsx, vitest), else the source tree beside dist/ (dist/ledger/web → ledger/web),
 * because esbuild bundles the TypeScript sources, not tsc's output.
 */
export function webSourceDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const dir of [here, resolve(here, '../../../ledger/web')]) {
    if (existsSync(join(dir, 'page', 'main.ts')) && existsSync(join(dir, 'verifier.ts'))) return dir;
  }
  throw new Error(`ledger web: page sources not found beside ${here} (ledger/web/page/main.ts)`);
}

function asset(body: Buffer, name: string, immutable: boolean): WebAsset {
  const ext = name.slice(name.lastIndexOf('.'));
  const contentType = TYPES[ext];
  if (contentType === undefined) throw new Error(`ledger web: no content type for ${name}`);
  return { body, contentType, etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`, immutable };
}

/** esbuild plugin: protocol/crypto.ts → crypto-browser.ts, node:crypto → node-crypto-browser.ts. */
function browserCrypto(dir: string): esbuild.Plugin {
  const protocolDir = resolve(dir, '../../protocol');
  return {
    name: 'packchain-browser-crypto',
    setup(build) {
      build.onResolve({ filter: /^(node:)?crypto$/ }, () => ({ path: join(dir, 'node-crypto-browser.ts') }));
      build.onResolve({ filter: /^\.\/crypto\.js$/ }, (args) =>
        resolve(args.resolveDir) === protocolDir ? { path: join(dir, 'crypto-browser.ts') } : undefined,
      );
    },
  };
}

/** Builds all assets. Throws (a bug, not bad input) if the sources do not bundle. */
export async function buildWebAssets(): Promise<WebAssets> {
  const started = performance.now();
  const dir = webSourceDir();
  const result = await esbuild.build({
    entryPoints: { app: join(dir, 'page', 'main.ts'), verify: join(dir, 'verifier.ts'), style: join(dir, 'page', 'style.css') },
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: ['chrome120', 'firefox128', 'safari17'],
    minify: true,
    legalComments: 'eof',
    outdir: '/assets',
    entryNames: '[name]-[hash]',
    inject: [join(dir, 'buffer-browser.ts')],
    plugins: [browserCrypto(dir)],
    logLevel: 'silent',
  });
  const files = new Map<string, WebAsset>();
  const names: Record<string, string> = {};
  for (const out of result.outputFiles) {
    const name = out.path.slice(out.path.lastIndexOf('/') + 1);
    const kind = name.slice(0, name.indexOf('-'));
    names[kind] = name;
    files.set(name, asset(Buffer.from(out.contents), name, true));
  }
  const app = names.app;
  const verifier = names.verify;
  const style = names.style;
  if (app === undefined || verifier === undefined || style === undefined) throw new Error('ledger web: esbuild did not produce app, verify and style');
  const html = readFileSync(join(dir, 'page', 'index.html'), 'utf8')
    .replaceAll('%APP%', `/assets/${app}`)
    .replaceAll('%VERIFIER%', `/assets/${verifier}`)
    .replaceAll('%STYLE%', `/assets/${style}`);
  return {
    index: asset(Buffer.from(html, 'utf8'), 'index.html', false),
    files,
    names: { app, verifier, style },
    buildMs: Math.round(performance.now() - started),
  };
}
