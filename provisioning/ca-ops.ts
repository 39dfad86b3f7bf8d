/**
 * CA operations that do not need the line CA's key: the trust bundle and CRL summaries, read from
 * the public files alone (`provision export` and `ca show` run without a passphrase), and the root
 * CRL refresh, which needs the root key — mounted from offline media for the occasion — and its
 * passphrase. Re-exported by ca.ts.
 */
import { resolve } from 'node:path';
import { createCrl, encodeTrustBundle, isProtocolError, toPem, TrustStore, type TrustBundle } from '../protocol/index.js';
import { ProvisioningError } from './errors.js';
import { decryptPrivateKeyPem, signingKey, writeFileAtomic } from './ca-keys.js';
import {
  CA_DEFAULTS,
  caPaths,
  checkCrlIssuer,
  checkKeyPair,
  crlSummary,
  DAY_MS,
  MODE_PUBLIC,
  readCaCerts,
  readCrlFile,
  readKeyFile,
  readState,
  seconds,
  writeState,
  type CrlSummary,
} from './ca-store.js';

function corrupt(message: string, cause?: unknown): never {
  throw new ProvisioningError('CA_CORRUPT', `provisioning: ${message}`, cause === undefined ? undefined : { cause });
}

/**
 * The trust bundle from the files alone (no passphrase: `provision export`), checked by building a
 * TrustStore from it. Throws CA_MISSING / CA_CORRUPT.
 */
export async function readTrustBundle(dir: string): Promise<{ text: string; bundle: TrustBundle; crls: { root: CrlSummary; line: CrlSummary } }> {
  const p = caPaths(resolve(dir));
  const { root, line } = readCaCerts(p);
  const rootCrl = readCrlFile(p.rootCrl, 'root CRL');
  const lineCrl = readCrlFile(p.lineCrl, 'line CRL');
  checkCrlIssuer(rootCrl, root, `root CRL ${p.rootCrl}`);
  checkCrlIssuer(lineCrl, line, `line CRL ${p.lineCrl}`);
  const bundle: TrustBundle = { roots: [root], intermediates: [line], crls: [rootCrl.der, lineCrl.der] };
  try {
    await TrustStore.create(bundle, { requireCrl: true });
  } catch (e) {
    if (isProtocolError(e)) corrupt(`the CA files in ${p.ca} do not form a valid trust bundle: ${e.message}`, e);
    throw e;
  }
  return { text: encodeTrustBundle(bundle), bundle, crls: { root: crlSummary(rootCrl.info), line: crlSummary(lineCrl.info) } };
}

/** Numbers and dates of both CRL files; no passphrase. Throws CA_MISSING / CA_CORRUPT. */
export function readCrlSummaries(dir: string): { root: CrlSummary; line: CrlSummary } {
  const p = caPaths(resolve(dir));
  readState(p);
  return { root: crlSummary(readCrlFile(p.rootCrl, 'root CRL').info), line: crlSummary(readCrlFile(p.lineCrl, 'line CRL').info) };
}

/**
 * Re-issues the root CRL (number + 1, nextUpdate a year on) with the root passphrase; the root key
 * must be present (mounted from offline media). The root revokes nothing in this version: a root
 * CRL that lists entries is refused (CA_CORRUPT) rather than re-issued without them. Returns the
 * new number. Throws CA_MISSING, CA_PASSPHRASE, CA_CORRUPT.
 */
export async function refreshRootCrl(dir: string, rootPassphrase: string, now: Date = new Date()): Promise<number> {
  const p = caPaths(resolve(dir));
  const { state, root } = readCaCerts(p);
  const key = decryptPrivateKeyPem(readKeyFile(p.rootKey, 'root CA key'), rootPassphrase, `root CA key ${p.rootKey}`);
  checkKeyPair(key, root, state.alg, `root CA key ${p.rootKey}`);
  const current = readCrlFile(p.rootCrl, 'root CRL');
  if (current.info.revoked.size > 0) corrupt(`root CRL ${p.rootCrl} lists revoked CA certificates; this station cannot re-issue it without dropping them`);
  const number = Math.max(state.rootCrlNumber, Number(current.info.crlNumber ?? 0n)) + 1;
  const crl = await createCrl({
    issuer: { cert: root, privateKey: await signingKey(key, state.alg) },
    crlNumber: number,
    thisUpdate: seconds(now.getTime()),
    nextUpdate: seconds(now.getTime() + CA_DEFAULTS.rootCrlDays * DAY_MS),
    revoked: [],
  });
  writeState(p, { ...readState(p), rootCrlNumber: number });
  writeFileAtomic(p.rootCrl, toPem(crl, 'X509 CRL'), MODE_PUBLIC);
  return number;
}
