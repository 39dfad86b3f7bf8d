/**
 * The gateway's certificate store: every device certificate chain a session verified, kept by the
 * SHA-256 of the device certificate. A log leaf names its certificate only by that hash
 * (docs/protocol.md §7.8, key 3), so `gateway verify` (re-verifying every frame's COSE signature)
 * and `gateway prove` (a proof bundle carries the chain, §9) need the chains the gateway saw.
 * Layout: `<dataDir>/certs/<64 hex>.pem`, the chain as PEM CERTIFICATE blocks, device first — the
 * file `openssl verify -untrusted` reads. A chain is written (temp 0600, fsync, rename, directory
 * fsync) synchronously when its session is verified, i.e. before any frame of that device can be
 * appended, so every leaf's chain is durable before the leaf. The store grows with the fleet, not
 * with the log. Files are hostile on read: the name must match the first block's hash.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync, constants } from 'node:fs';
import { join } from 'node:path';
import { bytesEqual, fromHex, fromPem, sha256, toHex, toPem } from '../protocol/index.js';
import { GatewayError } from './errors.js';

const HEX64 = /^[0-9a-f]{64}$/;
/** A chain is at most 4 certificates of ≤ 16 KiB (protocol MAX_CHAIN_CERTS, MAX_CERT_BYTES). */
const MAX_FILE_BYTES = 4 * 23 * 1024;

const storeError = (why: string, cause?: unknown): GatewayError => new GatewayError('CERT_STORE', `gateway: certs: ${why}`, cause === undefined ? undefined : { cause });

export class CertStore {
  /** Hashes known to be on disk (bounded by the fleet). */
  readonly #known = new Set<string>();
  #writes = 0;

  private constructor(readonly dir: string) {}

  /** The store in `dir`, created (0700) when `create` and missing. Throws CERT_STORE. */
  static open(dir: string, create: boolean): CertStore {
    if (create) {
      try {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
      } catch (e) {
        throw storeError(`cannot create ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
      }
    }
    return new CertStore(dir);
  }

  /** Chains written by this process. */
  get writes(): number {
    return this.#writes;
  }

  /**
   * Makes `chain` (device certificate first) durable under its device certificate's hash, unless
   * it already is. Synchronous on purpose: the caller (session verification) returns only once
   * the chain is on disk. Throws CERT_STORE when it cannot be written.
   */
  remember(chain: readonly Uint8Array[]): void {
    const first = chain[0];
    if (first === undefined) return;
    const hex = toHex(sha256(first));
    if (this.#known.has(hex)) return;
    const path = join(this.dir, `${hex}.pem`);
    if (this.#readOrUndefined(hex) !== undefined) {
      this.#known.add(hex);
      return;
    }
    const text = chain.map((der) => toPem(der, 'CERTIFICATE')).join('');
    const tmp = `${path}.tmp`;
    try {
      rmSync(tmp, { force: true });
      const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      try {
        writeSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
      const dfd = openSync(this.dir, constants.O_RDONLY | constants.O_DIRECTORY);
      try {
        fsyncSync(dfd);
      } finally {
        closeSync(dfd);
      }
    } catch (e) {
      throw storeError(`cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
    }
    this.#known.add(hex);
    this.#writes++;
  }

  /**
   * The chain whose device certificate has SHA-256 `certSha256`, or undefined when the gateway never
   * stored it. Throws CERT_STORE when the file is unreadable or does not hold that certificate.
   */
  chain(certSha256: Uint8Array): Uint8Array[] | undefined {
    const hex = toHex(certSha256);
    if (!HEX64.test(hex)) return undefined;
    return this.#readOrUndefined(hex);
  }

  #readOrUndefined(hex: string): Uint8Array[] | undefined {
    const path = join(this.dir, `${hex}.pem`);
    let text: string;
    try {
      const b = readFileSync(path);
      if (b.length > MAX_FILE_BYTES) throw storeError(`${path}: ${b.length} bytes; expected one certificate chain`);
      text = b.toString('utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      if (e instanceof GatewayError) throw e;
      throw storeError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
    }
    let blocks;
    try {
      blocks = fromPem(text);
    } catch (e) {
      throw storeError(`${path}: not PEM certificates: ${(e as Error).message}`, e);
    }
    const ders = blocks.filter((b) => b.label === 'CERTIFICATE').map((b) => b.der);
    const first = ders[0];
    if (first === undefined || ders.length !== blocks.length || ders.length > 4) throw storeError(`${path}: expected 1-4 CERTIFICATE blocks`);
    if (!bytesEqual(sha256(first), fromHex(hex))) throw storeError(`${path}: the first certificate's SHA-256 is not the file name`);
    return ders;
  }
}

