/**
 * Test-only fixtures for the ledger core's tests and benchmark (not exported from ledger/index.ts):
 * a throw-away factory PKI (root → line CA with CRLs, revocation), packs that sign frames with
 * node:crypto, a gateway log built with protocol code exactly as a gateway keeps it (encodeLeaf,
 * MemoryHashStore, signCheckpoint, proveTree) that produces signed upload bodies and request
 * headers, the ledger's witness, and the two storage backends (PGlite in a temp dir, a fresh
 * database on the machine's PostgreSQL, dropped afterwards). Imports protocol only.
 */
import { generateKeyPairSync, randomBytes, sign as nodeSign, webcrypto, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import {
  buildSign1,
  coseKid,
  createCosigner,
  createCrl,
  createDeviceCert,
  createIntermediateCa,
  createNoteSigner,
  createRootCa,
  encodeFrame,
  encodeLeaf,
  encodeUploadRequest,
  formatVerifierKey,
  gatewayOrigin,
  importPublicKey,
  MemoryHashStore,
  proveTree,
  sha256,
  signCheckpoint,
  signSyncRequest,
  spkiOf,
  treeHash,
  TrustStore,
  verifierOf,
  type Ed25519NoteSigner,
  type Issuer,
  type NoteVerifier,
  type RevokedCert,
  type SignatureAlg,
  type SohFrame,
  type TrustBundle,
  type UploadRequest,
  type UploadResult,
} from '../protocol/index.js';
import { isLedgerError } from './errors.js';
import type { Ledger } from './ledger.js';
import type { StorageOptions } from './types.js';

const DAY = 86_400_000;
/** A fixed clock for tests: frames are received around this time. */
export const T0 = Date.parse('2026-06-01T08:00:00Z');
export const VALIDITY = { notBefore: new Date(T0 - 30 * DAY), notAfter: new Date(T0 + 3650 * DAY) };

function deviceKey(alg: SignatureAlg): { privateKey: KeyObject; raw: Uint8Array } {
  const b64 = (s: string | undefined): Uint8Array => new Uint8Array(Buffer.from(s ?? '', 'base64url'));
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

export function frameOf(serial: string, counter: number, over: Partial<SohFrame> = {}): SohFrame {
  return {
    v: 1, serial, counter, time: T0 - 60_000 + counter * 1000, soc: 815, soh: 962, voltage: 52_480, current: -12_500, tempMin: 215,
    tempMax: 248, cycles: 312, cells: [3281, 3280, 3279, 3282], remainingCapacity: 96_200, resistance: 18_500, alarms: 0, firmware: '1.4.2',
    ...over,
  };
}

export interface TestPack {
  readonly serial: string;
  readonly chain: Uint8Array[];
  readonly certSha256: Uint8Array;
  readonly certSerialHex: string;
  frame(counter: number, over?: Partial<SohFrame>): Uint8Array;
  /** Signed by another key under this pack's kid. */
  forged(counter: number): Uint8Array;
}

export class TestFactory {
  private nextSerial = 0x1000;
  private constructor(
    readonly root: Issuer,
    readonly line: Issuer,
  ) {}

  static async create(name = 'Ledger Test'): Promise<TestFactory> {
    const keys = async (): Promise<webcrypto.CryptoKeyPair> => (await webcrypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const rk = await keys();
    const lk = await keys();
    const root = await createRootCa({ name: `${name} Root`, keys: rk, alg: 'Ed25519', ...VALIDITY });
    const rootIssuer = { cert: root, privateKey: rk.privateKey };
    const line = await createIntermediateCa({ name: `${name} Line`, keys: lk, alg: 'Ed25519', ...VALIDITY, issuer: rootIssuer });
    return new TestFactory(rootIssuer, { cert: line, privateKey: lk.privateKey });
  }

  /** Root and line CA with CRLs; the line CRL revokes `revoked` (certificate serials, hex). */
  async bundle(revoked: readonly string[] = []): Promise<TrustBundle> {
    const dates = { thisUpdate: VALIDITY.notBefore, nextUpdate: VALIDITY.notAfter };
    const list: RevokedCert[] = revoked.map((serialHex) => ({ serialHex, date: VALIDITY.notBefore }));
    return {
      roots: [this.root.cert],
      intermediates: [this.line.cert],
      crls: [await createCrl({ issuer: this.line, crlNumber: 1 + revoked.length, ...dates, revoked: list }), await createCrl({ issuer: this.root, crlNumber: 1, ...dates, revoked: [] })],
    };
  }

  async trust(revoked: readonly string[] = []): Promise<TrustStore> {
    return TrustStore.create(await this.bundle(revoked));
  }

  async pack(serial: string, alg: SignatureAlg = 'Ed25519'): Promise<TestPack> {
    const key = deviceKey(alg);
    const certSerialHex = (this.nextSerial++).toString(16).toUpperCase();
    const cert = await createDeviceCert({ packSerial: serial, devicePublicKey: key.raw, deviceAlg: alg, issuer: this.line, serialNumber: certSerialHex, ...VALIDITY });
    const kid = coseKid(spkiOf(importPublicKey(alg, key.raw)));
    const forger = deviceKey(alg);
    return {
      serial,
      chain: [cert, this.line.cert],
      certSha256: sha256(cert),
      certSerialHex,
      frame: (counter, over = {}) => buildSign1({ alg, kid, payload: encodeFrame(frameOf(serial, counter, over)) }, (tbs) => signWith(alg, key.privateKey, tbs)),
      forged: (counter) => buildSign1({ alg, kid, payload: encodeFrame(frameOf(serial, counter)) }, (tbs) => signWith(alg, forger.privateKey, tbs)),
    };
  }
}

/** The ledger's witness: a cosigner with a fixed clock (POSIX seconds). */
export function testWitness(seed = 42): Ed25519NoteSigner {
  return createCosigner('packchain.ledger/test', new Uint8Array(32).fill(seed), () => Math.floor(T0 / 1000) + 60);
}

/** A gateway log as a gateway keeps it: leaves, tree, signed checkpoints, proofs, signed requests. */
export class TestGateway {
  readonly origin: string;
  readonly signer: Ed25519NoteSigner;
  readonly leaves: Uint8Array[] = [];
  readonly store = new MemoryHashStore();
  private clock = T0;

  constructor(name: string, seed = 7) {
    this.origin = gatewayOrigin(name);
    this.signer = createNoteSigner(this.origin, new Uint8Array(32).fill(seed));
  }

  get vkey(): string {
    return formatVerifierKey(this.signer.name, this.signer.publicKey, 'ed25519');
  }

  get verifier(): NoteVerifier {
    return verifierOf(this.signer);
  }

  get size(): number {
    return this.leaves.length;
  }

  /** Appends a leaf for `frame` of `pack` (receivedAt advancing 1 s per leaf unless given). */
  append(pack: TestPack, frame: Uint8Array, receivedAt?: number): number {
    this.clock += 1000;
    return this.appendLeaf(encodeLeaf({ receivedAt: receivedAt ?? this.clock, source: 'serial:/dev/ttyUSB0', certSha256: pack.certSha256, frame }));
  }

  appendLeaf(leaf: Uint8Array): number {
    this.leaves.push(leaf);
    return this.store.append(leaf);
  }

  /** A checkpoint of the first `size` leaves (default all), signed by this gateway. */
  checkpoint(size = this.size): string {
    return signCheckpoint({ origin: this.origin, size, rootHash: treeHash(size, this.store) }, [this.signer]);
  }

  /** An upload of leaves [from, to) with the certs of `packs`, and a checkpoint of `cpSize` proven from `proofFrom` when given. */
  request(from: number, to: number, packs: readonly TestPack[], cp?: { size?: number; proofFrom: number; note?: string; proof?: Uint8Array[] }): UploadRequest {
    const certs = [...new Map(packs.flatMap((p) => p.chain).map((c) => [Buffer.from(c).toString('hex'), c])).values()];
    const base = { origin: this.origin, from, entries: this.leaves.slice(from, to), certs };
    if (cp === undefined) return base;
    const size = cp.size ?? to;
    return { ...base, checkpoint: cp.note ?? this.checkpoint(size), proof: cp.proof ?? proveTree(size, cp.proofFrom, this.store), proofFrom: cp.proofFrom };
  }

  body(req: UploadRequest): Uint8Array {
    return encodeUploadRequest(req);
  }

  /** The Authorization header for a request, signed now (`ts`) with a fresh nonce unless given. */
  authorize(method: string, path: string, body: Uint8Array, ts: number, nonce: Uint8Array = new Uint8Array(randomBytes(16))): string {
    return signSyncRequest({ method, path, body, timestamp: ts, nonce }, this.signer);
  }
}

/** A storage backend for tests: options plus a clean-up. */
export interface TestStorage {
  readonly name: 'embedded' | 'postgres';
  readonly options: StorageOptions;
  drop(): Promise<void>;
}

/** The machine's PostgreSQL (trust auth); override with LEDGER_TEST_PG. */
export const PG_ADMIN_URL = process.env['LEDGER_TEST_PG'] ?? 'postgres://root@127.0.0.1:5432/test';

export function embeddedStorage(): TestStorage {
  const dir = mkdtempSync(join(tmpdir(), 'ledger-test-'));
  return { name: 'embedded', options: { kind: 'embedded', dir }, drop: () => {
    rmSync(dir, { recursive: true, force: true });
    return Promise.resolve();
  } };
}

/** A fresh database on the machine's PostgreSQL, dropped by drop(). */
export async function postgresStorage(poolSize = 4): Promise<TestStorage> {
  const name = `ledger_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    name: 'postgres',
    options: { kind: 'postgres', url: url.toString(), poolSize },
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** Both backends, for describe.each. */
export const BACKENDS: readonly { readonly name: 'embedded' | 'postgres'; readonly make: () => Promise<TestStorage> }[] = [
  { name: 'embedded', make: () => Promise.resolve(embeddedStorage()) },
  { name: 'postgres', make: () => postgresStorage() },
];

/** Authenticates and uploads `req` as gateway `gw` (a fresh nonce, signed at `now`). */
export async function send(ledger: Ledger, gw: TestGateway, req: UploadRequest, now = T0): Promise<UploadResult> {
  const body = gw.body(req);
  const who = await ledger.authenticateGateway(gw.authorize('POST', '/v1/gateway/upload', body, now), 'POST', '/v1/gateway/upload', body);
  return ledger.upload(who, body);
}

/** The LedgerError code a promise rejects with, 'ok' when it resolves; anything else is rethrown. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (isLedgerError(e)) return e.code;
    throw e;
  }
}
