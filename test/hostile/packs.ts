/**
 * Packs for the hostile-input suite: a device key made with node:crypto and certified by the test
 * factory (gateway ingest-testkit TestFactory), so the suite can sign ANYTHING with a genuine key —
 * hostile payloads and hostile protected headers under a valid signature (a compromised or buggy
 * firmware), counter rollbacks, another pack's serial — and also forge (another key under this
 * pack's kid) and make the ES256 high-S twin of a signature (s' = n − s, the same payload with other
 * bytes). Every frame a pack signs as itself through `frame` is recorded in the `Genuine` registry:
 * the log may hold those, and only those.
 */
import { generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import {
  buildSign1,
  CborTag,
  coseKid,
  decodeCbor,
  encodeCbor,
  importPublicKey,
  sha256,
  sigStructure,
  spkiOf,
  toHex,
  type HelloMessage,
  type PublicKey,
  type SignatureAlg,
} from '../../protocol/index.js';
import { payload, type TestFactory } from '../../gateway/ingest/ingest-testkit.js';
import { write, type Node } from './cbor-hostile.js';

/** Order of the P-256 group (FIPS 186-4 D.1.2.3). */
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

const b64 = (s: string | undefined): Uint8Array => new Uint8Array(Buffer.from(s ?? '', 'base64url'));

function newKey(alg: SignatureAlg): { privateKey: KeyObject; raw: Uint8Array } {
  if (alg === 'Ed25519') {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    return { privateKey, raw: b64(publicKey.export({ format: 'jwk' }).x) };
  }
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const jwk = publicKey.export({ format: 'jwk' });
  return { privateKey, raw: new Uint8Array([4, ...b64(jwk.x), ...b64(jwk.y)]) };
}

function signWith(alg: SignatureAlg, key: KeyObject, tbs: Uint8Array): Uint8Array {
  return new Uint8Array(alg === 'Ed25519' ? nodeSign(null, tbs, key) : nodeSign('sha256', tbs, { key, dsaEncoding: 'ieee-p1363' }));
}

/** A frame payload for `serial`/`counter` (fields overridable; encodeFrame validates it): the ingest tests' own. */
export const payloadOf = payload;

/**
 * Every frame the suite made as genuine (signed by its pack's own key over its own serial), by
 * SHA-256 (kept as a 32-character latin1 string: the suite's own memory must not blur the gateway's).
 */
export class Genuine {
  readonly frames = new Set<string>();

  add(cose: Uint8Array): void {
    this.frames.add(Genuine.key(cose));
  }

  has(cose: Uint8Array): boolean {
    return this.frames.has(Genuine.key(cose));
  }

  static key(cose: Uint8Array): string {
    return Buffer.from(sha256(cose)).toString('latin1');
  }
}

export class HostilePack {
  readonly kid: Uint8Array;
  readonly publicKey: PublicKey;
  private readonly forger: KeyObject;

  private constructor(
    readonly serial: string,
    readonly alg: SignatureAlg,
    private readonly key: KeyObject,
    readonly raw: Uint8Array,
    readonly chain: Uint8Array[],
    readonly certSerialHex: string,
    private readonly genuine: Genuine | undefined,
  ) {
    this.publicKey = importPublicKey(alg, raw);
    this.kid = coseKid(spkiOf(this.publicKey));
    this.forger = newKey(alg).privateKey;
  }

  /** A pack certified by `factory`; its genuine frames go to `genuine` (none for attackers' packs). */
  static async create(factory: TestFactory, serial: string, alg: SignatureAlg, genuine?: Genuine): Promise<HostilePack> {
    const k = newKey(alg);
    const issued = await factory.issue(serial, k.raw, alg);
    return new HostilePack(serial, alg, k.privateKey, k.raw, issued.chain, issued.certSerialHex, genuine);
  }

  /** SHA-256 of the device certificate (the leaf's certSha256). */
  get certSha256(): Uint8Array {
    return sha256(this.chain[0] ?? new Uint8Array(0));
  }

  /** A genuine frame (recorded as such). */
  frame(counter: number): Uint8Array {
    const cose = this.signPayload(payloadOf(this.serial, counter));
    this.genuine?.add(cose);
    return cose;
  }

  /** Signs `payload` (any bytes) under the profile header with this pack's key: NOT recorded as genuine. */
  signPayload(payload: Uint8Array): Uint8Array {
    return buildSign1({ alg: this.alg, kid: this.kid, payload }, (tbs) => signWith(this.alg, this.key, tbs));
  }

  /** A frame with a genuine payload signed by another key under this pack's kid (a forgery). */
  forged(counter: number): Uint8Array {
    return buildSign1({ alg: this.alg, kid: this.kid, payload: payloadOf(this.serial, counter) }, (tbs) => signWith(this.alg, this.forger, tbs));
  }

  /**
   * A COSE_Sign1 whose protected header bytes are `protectedBytes` (any bytes), validly signed with
   * this pack's key over a genuine payload: the header profile, not the signature, must refuse it.
   */
  signedWithHeader(protectedBytes: Uint8Array, counter: number, unprotected: Node = { kind: 'map', entries: [] }): Uint8Array {
    const payload = payloadOf(this.serial, counter);
    const sig = signWith(this.alg, this.key, sigStructure(protectedBytes, new Uint8Array(0), payload));
    return write({ kind: 'tag', tag: 18, value: [protectedBytes, unprotected, payload, sig] });
  }

  /** The same COSE_Sign1 with the signature's s replaced by n − s (ES256 only; high-S malleability). */
  static highSTwin(cose: Uint8Array): Uint8Array {
    const tag = decodeCbor(cose);
    if (!(tag instanceof CborTag) || !Array.isArray(tag.value)) throw new Error('hostile: not a COSE_Sign1');
    const [prot, unprot, payload, sig] = tag.value;
    if (!(sig instanceof Uint8Array) || sig.length !== 64) throw new Error('hostile: not a 64-byte signature');
    const s = BigInt(`0x${toHex(sig.subarray(32))}`);
    const twin = new Uint8Array(sig);
    twin.set(Buffer.from((P256_N - s).toString(16).padStart(64, '0'), 'hex'), 32);
    return encodeCbor(new CborTag(18, [prot ?? null, unprot ?? null, payload ?? null, twin]));
  }

  hello(nextCounter: number, unacked: number): HelloMessage {
    return {
      type: 'hello',
      version: 1,
      serial: this.serial,
      model: 'PC-HOSTILE',
      firmware: '1.4.2',
      alg: this.alg === 'Ed25519' ? -8 : -7,
      publicKey: this.raw,
      chain: this.chain,
      nextCounter,
      unacked,
    };
  }
}
