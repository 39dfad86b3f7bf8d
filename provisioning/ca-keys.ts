/**
 * CA private keys at rest and the station's durable file writes. A CA key is stored as PKCS#8
 * "ENCRYPTED PRIVATE KEY" PEM (RFC 5958 §3, PBES2 of RFC 8018 §6.2): PBKDF2-HMAC-SHA256 with
 * 600,000 iterations and a 16-byte random salt, then AES-256-CBC. Node's own
 * `KeyObject.export({cipher})` writes the same structure but with OpenSSL's default 2,048
 * iterations, which makes a stolen key file cheap to brute-force; so the structure is built here
 * (OpenSSL — `openssl pkey -passin` and node's createPrivateKey — reads it unchanged). Reading is
 * left to OpenSSL. A decrypted key is turned at once into a non-extractable WebCrypto signing key;
 * the DER copy is zeroed. Files holding secrets are created mode 0600 (open with the mode, then
 * fchmod, because the umask may narrow but never widen it), and every write that must survive a
 * power cut goes through writeFileAtomic: temporary file, fsync, rename, fsync of the directory.
 */
import { randomBytes, createCipheriv, createPrivateKey, createPublicKey, pbkdf2Sync, webcrypto, type KeyObject } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { fromBase64, toBase64, type SignatureAlg } from '../protocol/index.js';
import { ProvisioningError } from './errors.js';

/** PBKDF2 rounds for new key files (OWASP 2023 figure for HMAC-SHA256; ~0.16 s on the NOTES.md machine). */
export const KEY_PBKDF2_ITERATIONS = 600_000;
const SALT_BYTES = 16;
const ENCRYPTED_LABEL = 'ENCRYPTED PRIVATE KEY';

// Pre-encoded OBJECT IDENTIFIERs (tag, length, content).
const OID_PBES2 = Uint8Array.of(0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d); // 1.2.840.113549.1.5.13
const OID_PBKDF2 = Uint8Array.of(0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c); // 1.2.840.113549.1.5.12
const OID_HMAC_SHA256 = Uint8Array.of(0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09); // 1.2.840.113549.2.9
const OID_AES256_CBC = Uint8Array.of(0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a); // 2.16.840.1.101.3.4.1.42
const DER_NULL = Uint8Array.of(0x05, 0x00);

function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const len = parts.reduce((n, p) => n + p.length, 0);
  let head: number[];
  if (len < 0x80) head = [tag, len];
  else if (len < 0x100) head = [tag, 0x81, len];
  else if (len < 0x10000) head = [tag, 0x82, len >> 8, len & 0xff];
  else throw new Error('provisioning: DER value over 64 KiB (a CA key is < 200 bytes)');
  const out = new Uint8Array(head.length + len);
  out.set(head, 0);
  let at = head.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function derUint(n: number): Uint8Array {
  let hex = n.toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  if (parseInt(hex.slice(0, 2), 16) >= 0x80) hex = `00${hex}`;
  return tlv(0x02, Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16)));
}

function pem(der: Uint8Array, label: string): string {
  const b64 = toBase64(der);
  let body = '';
  for (let i = 0; i < b64.length; i += 64) body += `${b64.slice(i, i + 64)}\n`;
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}

/**
 * EncryptedPrivateKeyInfo PEM of `key` under `passphrase` (UTF-8 bytes, as OpenSSL takes them).
 * `iterations` exists for tests of the reader; production keeps the default.
 */
export function encryptPrivateKeyPem(key: KeyObject, passphrase: string, iterations = KEY_PBKDF2_ITERATIONS): string {
  const plain = key.export({ format: 'der', type: 'pkcs8' });
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(16);
  const aesKey = pbkdf2Sync(Buffer.from(passphrase, 'utf8'), salt, iterations, 32, 'sha256');
  try {
    const cipher = createCipheriv('aes-256-cbc', aesKey, iv);
    const encrypted = Buffer.concat([cipher.update(plain), cipher.final()]);
    const params = tlv(
      0x30,
      tlv(0x30, OID_PBKDF2, tlv(0x30, tlv(0x04, salt), derUint(iterations), tlv(0x30, OID_HMAC_SHA256, DER_NULL))),
      tlv(0x30, OID_AES256_CBC, tlv(0x04, iv)),
    );
    return pem(tlv(0x30, tlv(0x30, OID_PBES2, params), tlv(0x04, encrypted)), ENCRYPTED_LABEL);
  } finally {
    plain.fill(0);
    aesKey.fill(0);
  }
}

/** One DER TLV header at `at`: tag, content start, content end. Returns undefined when it does not fit. */
function readTlv(b: Uint8Array, at: number): { tag: number; start: number; end: number } | undefined {
  const tag = b[at];
  let len = b[at + 1];
  if (tag === undefined || len === undefined) return undefined;
  let start = at + 2;
  if (len >= 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 3) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) {
      const byte = b[start + i];
      if (byte === undefined) return undefined;
      len = len * 256 + byte;
    }
    start += n;
  }
  return start + len <= b.length ? { tag, start, end: start + len } : undefined;
}

/** The DER of the one "ENCRYPTED PRIVATE KEY" block, checked for the EncryptedPrivateKeyInfo shape. */
function encryptedDer(text: string, what: string): Uint8Array {
  const corrupt = (why: string): never => {
    throw new ProvisioningError('CA_CORRUPT', `provisioning: ${what}: ${why}`);
  };
  if (/-----BEGIN (?:EC |)PRIVATE KEY-----/.test(text)) corrupt('the key is stored unencrypted; refusing to use it (re-encrypt it: openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 600000)');
  const m = /-----BEGIN ENCRYPTED PRIVATE KEY-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END ENCRYPTED PRIVATE KEY-----/.exec(text);
  if (m === null) corrupt('expected one "ENCRYPTED PRIVATE KEY" PEM block');
  let der: Uint8Array;
  try {
    der = fromBase64((m?.[1] ?? '').replace(/\s+/g, ''), 'CERT_PARSE', 'key PEM');
  } catch {
    return corrupt('the PEM body is not valid base64');
  }
  const outer = readTlv(der, 0);
  const alg = outer === undefined ? undefined : readTlv(der, outer.start);
  const data = alg === undefined ? undefined : readTlv(der, alg.end);
  if (outer?.tag !== 0x30 || outer.end !== der.length || alg?.tag !== 0x30 || data?.tag !== 0x04 || data.end !== outer.end || (data.end - data.start) % 16 !== 0) {
    corrupt('not a PKCS#8 EncryptedPrivateKeyInfo (RFC 5958 §3)');
  }
  return der;
}

/**
 * Decrypts a key file's text with OpenSSL. Throws CA_CORRUPT when the text is not an encrypted
 * PKCS#8 key (or is unencrypted), CA_PASSPHRASE when decryption fails. PBES2 has no MAC, so a
 * damaged ciphertext is indistinguishable from a wrong passphrase; the message says so.
 */
export function decryptPrivateKeyPem(text: string, passphrase: string, what: string): KeyObject {
  const der = encryptedDer(text, what);
  try {
    return createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8', passphrase });
  } catch (e) {
    throw new ProvisioningError('CA_PASSPHRASE', `provisioning: ${what}: wrong passphrase (or the encrypted key is damaged)`, { cause: e });
  }
}

export function webCryptoAlgorithm(alg: SignatureAlg): { name: string; namedCurve?: string } {
  return alg === 'Ed25519' ? { name: 'Ed25519' } : { name: 'ECDSA', namedCurve: 'P-256' };
}

/** The signature algorithm of a CA key object, or undefined for any other key type. */
export function keyAlg(key: KeyObject): SignatureAlg | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'Ed25519';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  return undefined;
}

/** A non-extractable WebCrypto signing key for `key` (what protocol's issuers take); the DER copy is zeroed. */
export async function signingKey(key: KeyObject, alg: SignatureAlg): Promise<webcrypto.CryptoKey> {
  const der = key.export({ format: 'der', type: 'pkcs8' });
  try {
    return await webcrypto.subtle.importKey('pkcs8', der, webCryptoAlgorithm(alg), false, ['sign']);
  } finally {
    der.fill(0);
  }
}

/** The WebCrypto public key of a private key object. */
export async function publicCryptoKey(key: KeyObject, alg: SignatureAlg): Promise<webcrypto.CryptoKey> {
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return webcrypto.subtle.importKey('spki', spki, webCryptoAlgorithm(alg), true, ['verify']);
}

/** fsync a directory so a rename or a new entry in it survives a power cut. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Creates `path` (it must not exist), writes `data` with `mode` and fsyncs it. */
export function writeNewFile(path: string, data: string | Uint8Array, mode: number): void {
  const fd = openSync(path, 'wx', mode);
  try {
    fchmodSync(fd, mode);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Replaces `path` atomically: a temporary file beside it, fsync, rename, fsync of the directory. */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    writeNewFile(tmp, data, mode);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dirname(path));
}
