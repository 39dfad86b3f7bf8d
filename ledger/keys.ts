/**
 * The ledger's witness key (docs/ledger.md "Deployment"): the Ed25519 key whose cosignatures
 * (c2sp.org/tlog-cosignature, note key type 0x04) the ledger adds to every gateway checkpoint it
 * accepts. The file holds one C2SP signer key line `PRIVATE+KEY+packchain.ledger/<host>+<key
 * ID>+<base64(0x04 ‖ seed)>` — the form Go's note package and other witnesses read — created 0600
 * (open with the mode, fchmod, fsync, directory fsync; never overwritten) and refused on load when
 * group or others may access it, like the gateway's key (gateway/keys.ts: the same rules, kept
 * apart because modules do not import each other). The verifier key (`packchain.ledger/<host>+<key
 * ID>+<base64(0x04 ‖ public key)>`) is public: gateways (upstream.witnessKey) and proof-bundle
 * verifiers take it. Key material never appears in an error message or a log.
 */
import { randomBytes } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createCosigner, formatSignerKey, formatVerifierKey, isValidKeyName, parseSignerKey, type Ed25519NoteSigner } from '../protocol/index.js';
import { LedgerError } from './errors.js';

export const WITNESS_NAME_PREFIX = 'packchain.ledger/';
export const WITNESS_KEY_MODE = 0o600;
const MAX_KEY_FILE_BYTES = 4096;

export interface WitnessKey {
  /** packchain.ledger/<host>: the cosignature key name. */
  readonly name: string;
  /** The cosigner (type 0x04), reading `clock` for each cosignature's timestamp. */
  readonly signer: Ed25519NoteSigner;
  /** The public verifier key string. */
  readonly verifierKey: string;
}

const keyError = (path: string, why: string, cause?: unknown): LedgerError =>
  new LedgerError('KEY_FILE', `ledger: witness key ${path}: ${why}`, cause === undefined ? undefined : { cause });

/** Throws USAGE unless `name` is packchain.ledger/<host> and a valid note key name. */
export function checkWitnessName(name: string): void {
  const host = name.startsWith(WITNESS_NAME_PREFIX) ? name.slice(WITNESS_NAME_PREFIX.length) : '';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(host) || !isValidKeyName(name)) {
    throw new LedgerError('USAGE', `ledger: witness name ${JSON.stringify(name.slice(0, 80))}: expected ${WITNESS_NAME_PREFIX}<host> with 1-63 of A-Z a-z 0-9 . _ - after the slash`);
  }
}

/** Seconds for the cosignature timestamp from a ms clock. */
const seconds = (clock: () => number) => (): number => Math.floor(clock() / 1000);

function keyOf(name: string, seed: Uint8Array, clock: () => number): WitnessKey {
  const signer = createCosigner(name, seed, seconds(clock));
  return { name, signer, verifierKey: formatVerifierKey(name, signer.publicKey, 'cosignature') };
}

/**
 * Creates the witness key file for `name` with a fresh seed (or `givenSeed`, for tests), 0600,
 * durable before it returns. Never overwrites: INIT_EXISTS. Throws KEY_FILE when it cannot be
 * written, USAGE for a bad name.
 */
export async function createWitnessKey(path: string, name: string, clock: () => number = Date.now, givenSeed?: Uint8Array): Promise<WitnessKey> {
  checkWitnessName(name);
  const seed = givenSeed ?? new Uint8Array(randomBytes(32));
  let fh: FileHandle;
  try {
    fh = await open(path, 'wx', WITNESS_KEY_MODE);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new LedgerError('INIT_EXISTS', `ledger: witness key ${path} exists; expected no file (a ledger keeps its witness key: gateways and verifiers trust it)`);
    throw keyError(path, `cannot create: ${code ?? (e as Error).message}`, e);
  }
  try {
    await fh.chmod(WITNESS_KEY_MODE);
    await fh.writeFile(`${formatSignerKey(name, seed, 'cosignature')}\n`, 'utf8');
    await fh.sync();
  } catch (e) {
    throw keyError(path, `cannot write: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
  } finally {
    await fh.close();
  }
  try {
    const d = await open(dirname(path), 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch (e) {
    throw keyError(path, `cannot sync its directory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
  }
  try {
    return keyOf(name, seed, clock);
  } finally {
    if (givenSeed === undefined) seed.fill(0);
  }
}

/**
 * Loads the witness key file. Throws KEY_PERMISSIONS when it is not a regular file or group/others
 * have any access; KEY_FILE when it is missing, unreadable, too large, not a signer key, not a
 * cosignature (0x04) key, or not named packchain.ledger/<host>. Messages never quote the file.
 */
export async function loadWitnessKey(path: string, clock: () => number = Date.now): Promise<WitnessKey> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw keyError(path, `cannot open: ${code ?? (e as Error).message}${code === 'ENOENT' ? '; create it with `packchain ledger init`' : ''}`, e);
  }
  let text: string;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new LedgerError('KEY_PERMISSIONS', `ledger: witness key ${path}: expected a regular file`);
    const mode = st.mode & 0o777;
    if ((mode & 0o077) !== 0) throw new LedgerError('KEY_PERMISSIONS', `ledger: witness key ${path} has mode ${mode.toString(8).padStart(4, '0')}; expected 0600 (no access for group or others): chmod 600 it`);
    if (st.size > MAX_KEY_FILE_BYTES) throw keyError(path, `${st.size} bytes; expected one signer key line`);
    text = await fh.readFile('utf8');
  } catch (e) {
    if (e instanceof LedgerError) throw e;
    throw keyError(path, `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
  } finally {
    await fh.close();
  }
  let k: ReturnType<typeof parseSignerKey>;
  try {
    k = parseSignerKey(text.replace(/\r?\n$/, ''));
  } catch (e) {
    throw keyError(path, 'expected one line PRIVATE+KEY+packchain.ledger/<host>+<key ID>+<base64 key> (c2sp.org/signed-note signer key)', e);
  }
  try {
    if (k.kind !== 'cosignature') throw keyError(path, `holds a ${k.kind} key; expected a cosignature key (type 0x04)`);
    try {
      checkWitnessName(k.name);
    } catch {
      throw keyError(path, `names ${JSON.stringify(k.name.slice(0, 80))}; expected ${WITNESS_NAME_PREFIX}<host>`);
    }
    return keyOf(k.name, k.seed, clock);
  } finally {
    k.seed.fill(0);
  }
}
