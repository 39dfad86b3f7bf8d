/**
 * `packchain gateway init` (docs/gateway.md "Install"): writes the commented example config
 * (config-example.ts) and a fresh gateway key (keys.ts, 0600) and returns the verifier key the
 * operator gives the ledger. It never overwrites: if either file exists nothing is written, because
 * a gateway's key is its identity — a new key for a gateway that has signed checkpoints would make
 * the ledger reject its log. The config is written after the key, and the key is removed again if
 * the config cannot be written, so a failed init leaves nothing behind. The data directory is not
 * created here (the service user owns it; the log store creates it 0700 on first start).
 */
import { lstat, mkdir, open, unlink } from 'node:fs/promises';
import { dirname, relative, resolve, sep } from 'node:path';
import { gatewayOrigin } from '../protocol/index.js';
import { exampleConfig } from './config-example.js';
import { parseConfig, type GatewayConfig } from './config.js';
import { GatewayError, invariant } from './errors.js';
import { createKeyFile } from './keys.js';

export interface InitOptions {
  /** Where the config goes (e.g. /etc/packchain/gateway.yaml). */
  readonly configPath: string;
  /** Gateway name: origin packchain.gateway/<name>. */
  readonly name: string;
  /** Default /var/lib/packchain. */
  readonly dataDir?: string;
  /** Default gateway.key beside the config. */
  readonly keyFile?: string;
  /** Default trust-bundle.json beside the config. */
  readonly trustBundle?: string;
}

export interface InitResult {
  readonly configPath: string;
  readonly keyFile: string;
  readonly origin: string;
  /** Public: `<origin>+<key ID>+<base64 key>`, for the ledger's list of gateways. */
  readonly verifierKey: string;
  /** The config as the daemon will read it. */
  readonly config: GatewayConfig;
}

/** Mode of directories init creates: the key's directory must not be world-readable. */
const DIR_MODE = 0o750;
const CONFIG_MODE = 0o640;

async function exists(path: string, code: 'CONFIG' | 'KEY_FILE'): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new GatewayError(code, `gateway: init: cannot check ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
}

/** A path as written into the config: relative to the config's directory when below it. */
function asWritten(configDir: string, path: string): string {
  const rel = relative(configDir, path);
  return rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep) ? rel : path;
}

/**
 * Writes the config and the key. Throws CONFIG for an invalid name, INIT_EXISTS when the config or
 * the key file exists (nothing written), KEY_FILE when the key cannot be written, CONFIG when the
 * config cannot be written (the new key is removed again).
 */
export async function initGateway(o: InitOptions): Promise<InitResult> {
  try {
    gatewayOrigin(o.name);
  } catch (e) {
    throw new GatewayError('CONFIG', `gateway: init: name: expected 1-63 of A-Z a-z 0-9 . _ - starting with a letter or digit, got ${JSON.stringify(o.name)}`, { cause: e });
  }
  const configPath = resolve(o.configPath);
  const configDir = dirname(configPath);
  const keyFile = resolve(configDir, o.keyFile ?? 'gateway.key');
  const trustBundle = resolve(configDir, o.trustBundle ?? 'trust-bundle.json');
  const dataDir = resolve(o.dataDir ?? '/var/lib/packchain');
  for (const [p, code] of [[configPath, 'CONFIG'], [keyFile, 'KEY_FILE']] as const) {
    if (await exists(p, code)) throw new GatewayError('INIT_EXISTS', `gateway: init: ${p} exists; expected no file (init never overwrites a gateway's config or key)`);
  }
  const text = exampleConfig({ name: o.name, dataDir, keyFile: asWritten(configDir, keyFile), trustBundle: asWritten(configDir, trustBundle) });
  const config = parseConfig(text, { source: configPath, baseDir: configDir });
  invariant(config.keyFile === keyFile, 'the example config names the key file init writes');

  for (const dir of new Set([configDir, dirname(keyFile)])) {
    try {
      await mkdir(dir, { recursive: true, mode: DIR_MODE });
    } catch (e) {
      throw new GatewayError('CONFIG', `gateway: init: cannot create ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
  }
  const key = await createKeyFile(keyFile, o.name);
  try {
    const fh = await open(configPath, 'wx', CONFIG_MODE);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (e) {
    await unlink(keyFile).catch(() => undefined);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new GatewayError('INIT_EXISTS', `gateway: init: ${configPath} appeared while init ran; expected no file (nothing kept)`);
    throw new GatewayError('CONFIG', `gateway: init: cannot write ${configPath}: ${code ?? (e as Error).message} (the new key was removed)`, { cause: e });
  }
  return { configPath, keyFile, origin: key.origin, verifierKey: key.verifierKey, config };
}
