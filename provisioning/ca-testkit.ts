/**
 * Test-only helpers for the CA, registry and revocation tests (not exported from index.ts): temporary
 * station directories, the real `openssl` binary (installed by scripts/setup-machine.sh; the tests
 * do not skip without it), device key pairs made with node:crypto in the raw forms a BMU reports
 * (Ed25519 32 bytes, P-256 65-byte uncompressed point), and PEM writing for openssl's inputs.
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBase64Url, type SignatureAlg } from '../protocol/index.js';

export const LINE_PASS = 'line passphrase for tests';
export const ROOT_PASS = 'root passphrase for tests';

/** A fresh temporary directory and its removal. */
export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `packchain-${prefix}-`));
  return {
    dir,
    remove: () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface OpensslRun {
  status: number | null;
  out: string;
}

/** Runs openssl with `args` in `cwd`; stdout and stderr together. */
export function openssl(cwd: string, ...args: string[]): OpensslRun {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

export interface DeviceKey {
  alg: SignatureAlg;
  /** As the device reports it: Ed25519 32 bytes, P-256 65 bytes (04 ‖ X ‖ Y). */
  publicKey: Uint8Array;
  privateKey: KeyObject;
}

export function deviceKey(alg: SignatureAlg): DeviceKey {
  const pair = alg === 'Ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = pair.publicKey.export({ format: 'jwk' });
  const x = fromBase64Url(jwk.x ?? '', 'COSE_KEY');
  const publicKey = alg === 'Ed25519' ? x : Uint8Array.from([0x04, ...x, ...fromBase64Url(jwk.y ?? '', 'COSE_KEY')]);
  return { alg, publicKey, privateKey: pair.privateKey };
}
