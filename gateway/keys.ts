/**
 * The gateway's checkpoint key (DESIGN.md decision 3; docs/protocol.md §8.2): a 32-byte Ed25519
 * seed kept in a file as the C2SP signer key text `PRIVATE+KEY+packchain.gateway/<name>+<key
 * ID>+<base64(0x01 ‖ seed)>` plus a newline — the format Go's note.NewSigner reads, so the key can
 * be checked or used by independent tools, and the file names its gateway, so a key copied to the
 * wrong gateway is refused rather than used to sign under another origin. The file is created
 * 0600 (open with the mode, then fchmod, fsync, directory fsync) and refused on load when group or
 * others may read or write it. The verifier key (`<origin>+<key ID>+<base64(0x01 ‖ public key)>`)
 * is what the operator gives the ledger. Key material never appears in an error message or a log.
 */
import { randomBytes } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createNoteSigner, formatSignerKey, formatVerifierKey, gatewayOrigin, parseSignerKey, type Ed25519NoteSigner } from '../protocol/index.js';
import { GatewayError } from './errors.js';

/** A loaded or created gateway key. `signer` signs checkpoints; nothing here exposes the seed. */
export interface GatewayKey {
  /** packchain.gateway/<name>: the checkpoint origin and the key's name. */
  readonly origin: string;
  readonly signer: Ed25519NoteSigner;
  /** The verifier key string for the ledger's configuration (public). */
  readonly verifierKey: string;
}

/** A key file is one line of about 110 characters. */
const MAX_KEY_FILE_BYTES = 4096;
export const KEY_FILE_MODE = 0o600;

const keyFileError = (path: string, why: string, cause?: unknown): GatewayError =>
  new GatewayError('KEY_FILE', `gateway: key file ${path}: ${why}`, cause === undefined ? undefined : { cause });

function originOf(name: string): string {
  try {
    return gatewayOrigin(name);
  } catch (e) {
    throw new GatewayError('CONFIG', `gateway: config: name: expected 1-63 of A-Z a-z 0-9 . _ - starting with a letter or digit, got ${JSON.stringify(name)}`, { cause: e });
  }
}

function keyOf(origin: string, seed: Uint8Array): GatewayKey {
  const signer = createNoteSigner(origin, seed);
  return { origin, signer, verifierKey: formatVerifierKey(origin, signer.publicKey) };
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Creates the key file for gateway `name` with a fresh seed (or `seed`, for tests), mode 0600,
 * durable before it returns. Never overwrites: an existing file is INIT_EXISTS. Throws KEY_FILE
 * when the file cannot be written (missing directory, permissions), CONFIG for an invalid name.
 */
export async function createKeyFile(path: string, name: string, givenSeed?: Uint8Array): Promise<GatewayKey> {
  const origin = originOf(name);
  const seed = givenSeed ?? randomBytes(32);
  try {
    return await writeKey(path, origin, seed);
  } finally {
    if (givenSeed === undefined) seed.fill(0);
  }
}

async function writeKey(path: string, origin: string, seed: Uint8Array): Promise<GatewayKey> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'wx', KEY_FILE_MODE);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new GatewayError('INIT_EXISTS', `gateway: key file ${path} exists; expected no file (a gateway keeps its key: remove the file yourself only if this gateway never signed a checkpoint)`);
    throw keyFileError(path, `cannot create: ${code ?? (e as Error).message}`, e);
  }
  const text = `${formatSignerKey(origin, seed)}\n`;
  try {
    await fh.chmod(KEY_FILE_MODE); // the umask may have narrowed it; never widened, but be sure
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => undefined);
    throw keyFileError(path, `cannot write: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
  }
  await fh.close();
  try {
    await syncDir(dirname(path));
  } catch (e) {
    throw keyFileError(path, `cannot sync its directory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
  }
  return keyOf(origin, seed);
}

/**
 * Loads the key file of gateway `name`. Throws KEY_PERMISSIONS when it is not a regular file or
 * group/others have any access (mode & 077), KEY_FILE when it is missing, unreadable, too large, not
 * a signer key, not an Ed25519 note key (0x01), or the key of another gateway name; CONFIG for an
 * invalid name. Messages never quote the file's content.
 */
export async function loadKeyFile(path: string, name: string): Promise<GatewayKey> {
  const origin = originOf(name);
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const hint = code === 'ENOENT' ? '; create it with `packchain gateway init`' : code === 'EACCES' ? '; the service user must own it' : '';
    throw keyFileError(path, `cannot open: ${code ?? (e as Error).message}${hint}`, e);
  }
  let text: string;
  try {
    // fstat on the open descriptor: the file checked is the file read.
    const st = await fh.stat();
    if (!st.isFile()) throw new GatewayError('KEY_PERMISSIONS', `gateway: key file ${path}: expected a regular file`);
    const mode = st.mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new GatewayError('KEY_PERMISSIONS', `gateway: key file ${path} has mode ${mode.toString(8).padStart(4, '0')}; expected 0600 (no access for group or others): chmod 600 it`);
    }
    if (st.size > MAX_KEY_FILE_BYTES) throw keyFileError(path, `${st.size} bytes; expected one signer key line`);
    text = await fh.readFile('utf8');
  } catch (e) {
    if (e instanceof GatewayError) throw e;
    throw keyFileError(path, `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
  } finally {
    await fh.close();
  }
  const line = text.replace(/\r?\n$/, '');
  let parsed: ReturnType<typeof parseSignerKey>;
  try {
    parsed = parseSignerKey(line);
  } catch (e) {
    // parseSignerKey's messages never include key material; still, say only what was expected.
    throw keyFileError(path, 'expected one line PRIVATE+KEY+<origin>+<key ID>+<base64 key> (c2sp.org/signed-note signer key)', e);
  }
  try {
    if (parsed.kind !== 'ed25519') throw keyFileError(path, `holds a ${parsed.kind} key; expected an Ed25519 note key (type 0x01)`);
    if (parsed.name !== origin) throw keyFileError(path, `holds the key of ${JSON.stringify(parsed.name)}; expected ${origin} (the config's name)`);
    return keyOf(origin, parsed.seed);
  } finally {
    parsed.seed.fill(0);
  }
}
