/**
 * The JSON state files of a device's flash (docs/hw-sim.md §3 "State files"): identity.json
 * (factory settings, the private key as hex, the certificate chain as base64, the pack serial) and
 * runtime.json (counter reservation, clean-shutdown flag, battery model snapshot). Both are read
 * from disk at boot and so are untrusted: decoding checks every field and fails with FLASH_CORRUPT
 * naming the file and field — never quoting the content, which holds the private key.
 */
import {
  coseKid,
  FRAME_FIELD_BY_NAME,
  fromBase64,
  fromHex,
  publicKeyFromSecretPortable,
  spkiPortable,
  toBase64,
  toHex,
  type SignatureAlg,
} from '../protocol/index.js';
import { SimError } from './errors.js';

export interface FactorySettings {
  /** Device model, 1–64 bytes of printable text (hello field 3). */
  readonly model: string;
  /** Firmware version major.minor.patch (frame field 15, hello field 4). */
  readonly firmware: string;
  /** The serial printed on the pack's label, if any (informational: frames carry the certificate's). */
  readonly label?: string;
}

/** What the device knows about itself; the private key is never part of it. */
export interface FlashIdentity {
  readonly model: string;
  readonly firmware: string;
  readonly label: string | undefined;
  readonly alg: SignatureAlg | null;
  readonly publicKey: Uint8Array | null;
  /** COSE kid of the device key (coseKid of its SPKI), null without a key. */
  readonly kid: Uint8Array | null;
  readonly chain: readonly Uint8Array[];
  /** Pack serial from the device certificate; "" until provisioned. */
  readonly serial: string;
}

export const IDENTITY_FORMAT = 'packchain-bmu-identity/v1';
export const RUNTIME_FORMAT = 'packchain-bmu-runtime/v1';
const SERIAL_PATTERN = FRAME_FIELD_BY_NAME.get('serial')?.pattern ?? /^$/;
const FIRMWARE_PATTERN = FRAME_FIELD_BY_NAME.get('firmware')?.pattern ?? /^$/;
// eslint-disable-next-line no-control-regex -- control characters are what we refuse (docs/protocol.md §4.2)
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Throws FLASH_CONFIG with the module prefix. */
export function configError(message: string): never {
  throw new SimError('FLASH_CONFIG', `hw-sim: ${message}`);
}

/** Checks factory settings against the hello and frame field rules. Throws FLASH_CONFIG. */
export function checkFactory(f: FactorySettings): void {
  if (Buffer.byteLength(f.model) < 1 || Buffer.byteLength(f.model) > 64 || CONTROL.test(f.model)) configError('model: expected 1-64 bytes of printable text');
  if (f.firmware.length > 32 || !FIRMWARE_PATTERN.test(f.firmware)) configError('firmware: expected major.minor.patch, at most 32 characters');
  if (f.label !== undefined && !SERIAL_PATTERN.test(f.label)) configError(`label: expected ${String(SERIAL_PATTERN)}`);
}

/** identity.json in memory. Holds the secret: never log, print or return it from the module. */
export interface IdentityFile {
  model: string;
  firmware: string;
  label: string | undefined;
  alg: SignatureAlg | null;
  secretKey: Uint8Array | null;
  chain: Uint8Array[];
  serial: string;
}

/** Checks a parsed identity.json (flash-files.ts parseStateJson). Throws FLASH_CORRUPT naming the field. */
export function decodeIdentity(v: Record<string, unknown>, path: string): IdentityFile {
  const bad = (field: string): never => {
    throw new SimError('FLASH_CORRUPT', `hw-sim: ${path}: field "${field}" is missing or malformed`);
  };
  const str = (k: string): string => (typeof v[k] === 'string' ? v[k] : bad(k));
  const alg = v.alg === null || v.alg === 'Ed25519' || v.alg === 'ES256' ? v.alg : bad('alg');
  const sk = v.secretKey === null ? null : typeof v.secretKey === 'string' && /^[0-9a-f]{64}$/.test(v.secretKey) ? fromHex(v.secretKey) : bad('secretKey');
  if ((alg === null) !== (sk === null)) bad('secretKey');
  if (alg !== null && sk !== null) {
    try {
      publicKeyFromSecretPortable(alg, sk); // P-256 needs a scalar in 1..n−1
    } catch {
      bad('secretKey');
    }
  }
  if (!Array.isArray(v.chain) || v.chain.some((c) => typeof c !== 'string')) bad('chain');
  const chain = (v.chain as string[]).map((c) => {
    try {
      return fromBase64(c, 'CERT_PARSE');
    } catch {
      return bad('chain');
    }
  });
  const label = v.label === null || v.label === undefined ? undefined : str('label');
  return { model: str('model'), firmware: str('firmware'), label, alg, secretKey: sk, chain, serial: str('serial') };
}

/** The public view of an identity: derives the public key and kid, leaves the secret out. */
export function identityView(id: IdentityFile): FlashIdentity {
  const pub = id.alg && id.secretKey ? publicKeyFromSecretPortable(id.alg, id.secretKey) : null;
  return {
    model: id.model,
    firmware: id.firmware,
    label: id.label,
    alg: id.alg,
    publicKey: pub ? pub.raw : null,
    kid: pub ? coseKid(spkiPortable(pub)) : null,
    chain: id.chain,
    serial: id.serial,
  };
}

/** identity.json bytes: the key as lowercase hex, certificates as base64. */
export function encodeIdentity(id: IdentityFile): string {
  const { model, firmware, label, alg, secretKey, chain, serial } = id;
  const file = { format: IDENTITY_FORMAT, model, firmware, label: label ?? null, alg, secretKey: secretKey ? toHex(secretKey) : null, chain: chain.map(toBase64), serial };
  return `${JSON.stringify(file, null, 1)}\n`;
}

/** runtime.json bytes; `sensor` must be JSON-serialisable (Sensor.snapshot's contract). */
export function encodeRuntime(counterReserved: number, sensor: unknown, clean: boolean): string {
  return `${JSON.stringify({ format: RUNTIME_FORMAT, counterReserved, clean, sensor: sensor ?? null })}\n`;
}
