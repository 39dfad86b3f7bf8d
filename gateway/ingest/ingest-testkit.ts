/**
 * Test-only fixtures for the ingest tests and the ingest benchmark (not exported from
 * gateway/index.ts): a throw-away factory PKI (root → line CA, CRLs; revocation and a foreign root),
 * packs that sign frames with node:crypto (fast enough to pre-sign benchmark loads) and speak hellos,
 * and an in-memory IngestLog that honours the log contract (durable-before-resolve, in-order
 * appends) and can be made to fail. Imports protocol only, like every gateway file.
 */
import { generateKeyPairSync, sign as nodeSign, webcrypto, type KeyObject } from 'node:crypto';
import {
  buildSign1,
  coseKid,
  createCrl,
  createDeviceCert,
  createIntermediateCa,
  createRootCa,
  decodeLeaf,
  encodeFrame,
  encodeLeaf,
  importPublicKey,
  sha256,
  spkiOf,
  toHex,
  TrustStore,
  type HelloMessage,
  type Issuer,
  type RevokedCert,
  type SignatureAlg,
  type SohFrame,
  type TrustBundle,
} from '../../protocol/index.js';
import { GatewayError } from '../errors.js';
import type { IngestEntry, IngestLog } from './log-port.js';
import { frameIdentity } from './dedupe.js';

const DAY = 86_400_000;
export const VALIDITY = { notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + 365 * DAY) };

export interface TestPack {
  readonly serial: string;
  readonly alg: SignatureAlg;
  readonly publicKey: Uint8Array;
  readonly chain: Uint8Array[];
  readonly certSha256: Uint8Array;
  /** A signed frame for `counter` (payload fields overridable). */
  frame(counter: number, over?: Partial<SohFrame>): Uint8Array;
  /** A frame signed by another key under this pack's kid (a forgery). */
  forged(counter: number): Uint8Array;
  hello(nextCounter?: number, unacked?: number): HelloMessage;
}

function deviceKey(alg: SignatureAlg): { privateKey: KeyObject; raw: Uint8Array } {
  if (alg === 'Ed25519') {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const jwk = publicKey.export({ format: 'jwk' });
    return { privateKey, raw: b64(jwk.x) };
  }
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const jwk = publicKey.export({ format: 'jwk' });
  return { privateKey, raw: new Uint8Array([4, ...b64(jwk.x), ...b64(jwk.y)]) };
}

const b64 = (s: string | undefined): Uint8Array => new Uint8Array(Buffer.from(s ?? '', 'base64url'));

function signWith(alg: SignatureAlg, key: KeyObject, tbs: Uint8Array): Uint8Array {
  return new Uint8Array(alg === 'Ed25519' ? nodeSign(null, tbs, key) : nodeSign('sha256', tbs, { key, dsaEncoding: 'ieee-p1363' }));
}

export function payload(serial: string, counter: number, over: Partial<SohFrame> = {}): Uint8Array {
  return encodeFrame({
    v: 1,
    serial,
    counter,
    time: 1_767_225_600_000 + counter * 1000,
    soc: 815,
    soh: 962,
    voltage: 52_480,
    current: 12_500,
    tempMin: 215,
    tempMax: 248,
    cycles: 312,
    cells: [3281, 3280, 3279, 3282],
    remainingCapacity: 96_200,
    resistance: 18_500,
    alarms: 0,
    firmware: '1.4.2',
    ...over,
  });
}

async function caKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

/** A factory: root → line CA, both with CRLs, and the packs it issues. */
export class TestFactory {
  private nextCertSerial = 0x1000;
  private constructor(
    readonly root: Issuer,
    readonly line: Issuer,
  ) {}

  static async create(name = 'Test'): Promise<TestFactory> {
    const rk = await caKeys();
    const lk = await caKeys();
    const root = await createRootCa({ name: `${name} Root`, keys: rk, alg: 'Ed25519', ...VALIDITY });
    const rootIssuer = { cert: root, privateKey: rk.privateKey };
    const line = await createIntermediateCa({ name: `${name} Line`, keys: lk, alg: 'Ed25519', ...VALIDITY, issuer: rootIssuer });
    return new TestFactory(rootIssuer, { cert: line, privateKey: lk.privateKey });
  }

  /** The trust bundle: this factory's root and line CA, the line CA's CRL revoking `revoked`. */
  async bundle(revoked: readonly string[] = []): Promise<TrustBundle> {
    const dates = { thisUpdate: VALIDITY.notBefore, nextUpdate: VALIDITY.notAfter };
    const list: RevokedCert[] = revoked.map((serialHex) => ({ serialHex, date: VALIDITY.notBefore }));
    const crls = [
      await createCrl({ issuer: this.line, crlNumber: 1 + revoked.length, ...dates, revoked: list }),
      await createCrl({ issuer: this.root, crlNumber: 1, ...dates, revoked: [] }),
    ];
    return { roots: [this.root.cert], intermediates: [this.line.cert], crls };
  }

  /** A trust store over `bundle(revoked)`. */
  async trust(revoked: readonly string[] = []): Promise<TrustStore> {
    return TrustStore.create(await this.bundle(revoked));
  }

  /** The chain [device certificate, line CA] for a device key generated elsewhere (a simulated pack). */
  async issue(packSerial: string, devicePublicKey: Uint8Array, deviceAlg: SignatureAlg, certSerialHex?: string): Promise<{ chain: Uint8Array[]; certSerialHex: string }> {
    const serialHex = certSerialHex ?? (this.nextCertSerial++).toString(16).toUpperCase();
    const cert = await createDeviceCert({ packSerial, devicePublicKey, deviceAlg, issuer: this.line, serialNumber: serialHex, ...VALIDITY });
    return { chain: [cert, this.line.cert], certSerialHex: serialHex };
  }

  /** Issues a pack; its certificate serial (for revocation) is `pack.certSerialHex`. */
  async pack(serial: string, alg: SignatureAlg = 'Ed25519'): Promise<TestPack & { certSerialHex: string }> {
    const key = deviceKey(alg);
    const certSerialHex = (this.nextCertSerial++).toString(16).toUpperCase();
    const cert = await createDeviceCert({ packSerial: serial, devicePublicKey: key.raw, deviceAlg: alg, issuer: this.line, serialNumber: certSerialHex, ...VALIDITY });
    const kid = coseKid(spkiOf(importPublicKey(alg, key.raw)));
    const chain = [cert, this.line.cert];
    const frame = (counter: number, over: Partial<SohFrame> = {}): Uint8Array =>
      buildSign1({ alg, kid, payload: payload(serial, counter, over) }, (tbs) => signWith(alg, key.privateKey, tbs));
    const forger = deviceKey(alg);
    return {
      serial,
      alg,
      publicKey: key.raw,
      chain,
      certSha256: sha256(cert),
      certSerialHex,
      frame,
      forged: (counter) => buildSign1({ alg, kid, payload: payload(serial, counter) }, (tbs) => signWith(alg, forger.privateKey, tbs)),
      hello: (nextCounter = 0, unacked = 0) => ({
        type: 'hello',
        version: 1,
        serial,
        model: 'PC-TEST',
        firmware: '1.4.2',
        alg: alg === 'Ed25519' ? -8 : -7,
        publicKey: key.raw,
        chain,
        nextCounter,
        unacked,
      }),
    };
  }
}

/** An unprovisioned pack's hello (no key, no chain). */
export function blankHello(): HelloMessage {
  return { type: 'hello', version: 1, serial: '', model: 'PC-TEST', firmware: '1.4.2', alg: null, publicKey: null, chain: [], nextCounter: 0, unacked: 0 };
}

/** IngestLog in memory: appends resolve in order after a microtask; `failNext` makes appends fail. */
export class MemoryLog implements IngestLog {
  readonly data: Uint8Array[] = [];
  private readonly byCounter = new Map<string, number>();
  failNext = 0;
  appends = 0;
  private chain: Promise<unknown> = Promise.resolve();

  get size(): number {
    return this.data.length;
  }

  append(entries: readonly IngestEntry[]): Promise<number> {
    this.appends++;
    const fail = this.failNext > 0;
    if (fail) this.failNext--;
    const run = this.chain.then(() => {
      if (fail) throw new GatewayError('STORE_IO', 'gateway: store: injected failure');
      const first = this.data.length;
      for (const e of entries) {
        this.byCounter.set(`${e.serial}/${e.counter}`, this.data.length);
        this.data.push(encodeLeaf(e.leaf));
      }
      return first;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  frameIdentity(serial: string, counter: number): Promise<string | undefined> {
    const i = this.byCounter.get(`${serial}/${counter}`);
    const d = i === undefined ? undefined : this.data[i];
    return Promise.resolve(d === undefined ? undefined : frameIdentity(decodeLeaf(d).frame));
  }

  async *leaves(from: number, to: number): AsyncIterable<Uint8Array> {
    for (let i = from; i < to; i++) {
      const d = this.data[i];
      if (d !== undefined) yield d;
      await Promise.resolve();
    }
  }

  /** Stored (serial, counter) keys with how often each is stored. */
  frames(): Map<string, number> {
    const m = new Map<string, number>();
    for (const d of this.data) {
      const leaf = decodeLeaf(d);
      const k = toHex(sha256(leaf.frame));
      m.set(k, (m.get(k) ?? 0) + 1);
    }
    return m;
  }
}
