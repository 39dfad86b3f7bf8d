/**
 * The upstream ledger's core (docs/ledger.md): it trusts no gateway. Gateways are enrolled by their
 * C2SP verifier key; every request is authenticated by that key and replay-proof across ledger
 * processes (nonces in the database); uploads are verified again to the last frame signature,
 * each gateway's tree is rebuilt and checked against its signed checkpoints, accepted checkpoints
 * are cosigned with the ledger's witness key, and a gateway that rewrites history is refused with
 * evidence kept (upload.ts). Storage is PGlite in a directory (embedded default) or a PostgreSQL
 * server shared by several stateless ledger processes (db/driver.ts) — one schema, one query layer.
 * The HTTP service (ledger/http/) is a thin layer over this class.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  emptyRoot,
  formatVerifierKey,
  GATEWAY_ORIGIN_PREFIX,
  isProtocolError,
  parseSyncAuthorization,
  parseVerifierKey,
  SYNC_AUTH_SKEW_MS,
  toBase64Url,
  verifySyncRequest,
  type NoteVerifier,
  type SyncState,
  type TrustStore,
  type UploadResult,
} from '../protocol/index.js';
import { DeviceResolver } from './certs.js';
import { openEmbedded, openPostgres, type Db, type Queryable } from './db/driver.js';
import { migrate } from './db/migrations.js';
import { isLedgerError, LedgerError } from './errors.js';
import * as queries from './queries.js';
import type {
  ForkEvidence,
  GatewayRecord,
  HistoryRow,
  LedgerAlert,
  LedgerOptions,
  LedgerStats,
  PackDetail,
  PackSummary,
  PassportFrame,
} from './types.js';
import { stateOf, upload, UploadOrder, type EvidenceDraft, type UploadContext } from './upload.js';
import { VerifyPool } from './verify-pool.js';

export type * from './types.js';

const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

interface GatewayDbRow {
  id: number;
  origin: string;
  vkey: string;
  label: string;
  enrolled_at: number;
  disabled: boolean;
}

const record = (r: GatewayDbRow): GatewayRecord => ({
  id: r.id,
  origin: r.origin,
  vkey: r.vkey,
  label: r.label,
  enrolledAt: r.enrolled_at,
  disabled: r.disabled,
});

function newStats(): LedgerStats {
  return {
    uploads: 0, uploadsRefused: {}, entriesStored: 0, duplicates: 0, framesStored: 0, framesSeenAgain: 0, framesRejected: {},
    checkpointsCosigned: 0, conflicts: 0, badProofs: 0, equivocations: 0, authFailures: 0, replays: 0,
  };
}

export class Ledger {
  private readonly counters = newStats();
  private readonly verifiers = new Map<string, NoteVerifier>();
  private readonly order = new UploadOrder();
  private readonly devices: DeviceResolver;
  private readonly clock: () => number;
  private closed = false;
  private noncesSwept = 0;

  private constructor(
    private readonly db: Db,
    private readonly pool: VerifyPool,
    private readonly o: LedgerOptions,
  ) {
    this.devices = new DeviceResolver(o.trust);
    this.clock = o.clock ?? Date.now;
  }

  /**
   * Opens the storage, applies migrations (advisory-locked: several processes may start at once) and
   * starts the verify workers. Throws STORAGE_CONFIG, STORAGE_LOCKED (embedded store in use), STORAGE.
   */
  static async open(o: LedgerOptions): Promise<Ledger> {
    const db = o.storage.kind === 'embedded' ? await openEmbedded(o.storage.dir) : await openPostgres(o.storage.url, o.storage.poolSize);
    let pool: VerifyPool | undefined;
    try {
      await migrate(db, o.clock);
      pool = await VerifyPool.start(o.verifyThreads);
      return new Ledger(db, pool, o);
    } catch (e) {
      await pool?.close();
      await db.close();
      throw e;
    }
  }

  /** Which backend this ledger runs on. */
  get storageKind(): 'embedded' | 'postgres' {
    return this.db.kind;
  }

  /** Runs a query on the open database; after close() the promise rejects with LEDGER_CLOSED. */
  private async use<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    return await fn(this.live());
  }

  private live(): Db {
    if (this.closed) throw new LedgerError('LEDGER_CLOSED', 'ledger: the ledger is closed');
    return this.db;
  }

  /** Replaces the trust store (a reloaded trust bundle or fresh CRLs); later uploads are judged with it. */
  setTrust(trust: TrustStore): void {
    this.devices.setTrust(trust);
  }

  /**
   * Enrolls a gateway by its C2SP Ed25519 verifier key, whose name is its log origin
   * (`packchain.gateway/<name>`). The same key again returns the same record. Throws GATEWAY_KEY for
   * another kind of key or name, GATEWAY_EXISTS when another key holds that origin.
   */
  async enrollGateway(vkey: string, label = ''): Promise<GatewayRecord> {
    const db = this.live();
    let v: NoteVerifier;
    try {
      v = parseVerifierKey(vkey.trim());
    } catch (e) {
      throw new LedgerError('GATEWAY_KEY', `ledger: gateway key: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    if (v.kind !== 'ed25519') throw new LedgerError('GATEWAY_KEY', 'ledger: gateway key must be an Ed25519 note key (type 0x01), the key that signs its checkpoints');
    if (!v.name.startsWith(GATEWAY_ORIGIN_PREFIX)) throw new LedgerError('GATEWAY_KEY', `ledger: gateway key name must start with ${GATEWAY_ORIGIN_PREFIX}, got ${JSON.stringify(v.name)}`);
    if (label.length > 200) throw new LedgerError('GATEWAY_KEY', 'ledger: label must be at most 200 characters');
    const key = vkey.trim();
    await db.query('INSERT INTO gateways (origin, vkey, label, enrolled_at, root) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (origin) DO NOTHING', [v.name, key, label, this.clock(), emptyRoot()]);
    const [row] = await db.query<GatewayDbRow>('SELECT * FROM gateways WHERE origin = $1', [v.name]);
    if (row === undefined) throw new LedgerError('STORAGE', `ledger: gateway ${v.name} vanished during enrollment`);
    if (row.vkey !== key) throw new LedgerError('GATEWAY_EXISTS', `ledger: ${v.name} is enrolled with another key`);
    return record(row);
  }

  async gateways(): Promise<GatewayRecord[]> {
    return (await this.live().query<GatewayDbRow>('SELECT * FROM gateways ORDER BY origin')).map(record);
  }

  /** Disables (or re-enables) a gateway: its requests are refused with GATEWAY_DISABLED. Throws GATEWAY_UNKNOWN. */
  async setGatewayDisabled(origin: string, disabled: boolean): Promise<void> {
    const rows = await this.live().query('UPDATE gateways SET disabled = $2 WHERE origin = $1 RETURNING id', [origin, disabled]);
    if (rows.length === 0) throw new LedgerError('GATEWAY_UNKNOWN', `ledger: no gateway ${JSON.stringify(origin)} is enrolled`);
  }

  private verifier(gw: GatewayRecord): NoteVerifier {
    const id = `${gw.origin}\n${gw.vkey}`;
    let v = this.verifiers.get(id);
    if (v === undefined) {
      v = parseVerifierKey(gw.vkey);
      this.verifiers.set(id, v);
    }
    return v;
  }

  /**
   * Authenticates a gateway request (docs/protocol.md §10.1): the Authorization header parsed and
   * verified against the enrolled key over method, path and body, the timestamp within the skew
   * window, and the nonce unused — remembered in the database until the window has passed, so a
   * replay to another ledger process is refused too. Throws AUTH_FAILED, AUTH_REPLAY,
   * GATEWAY_UNKNOWN, GATEWAY_DISABLED.
   */
  async authenticateGateway(authorization: string | undefined, method: string, path: string, body: Uint8Array): Promise<GatewayRecord> {
    const db = this.live();
    const fail = (code: 'AUTH_FAILED' | 'GATEWAY_UNKNOWN' | 'GATEWAY_DISABLED', msg: string, cause?: unknown): never => {
      this.counters.authFailures++;
      throw new LedgerError(code, msg, cause === undefined ? undefined : { cause });
    };
    let auth;
    try {
      auth = parseSyncAuthorization(authorization);
    } catch (e) {
      return fail('AUTH_FAILED', `ledger: ${e instanceof Error ? e.message : String(e)}`, e);
    }
    const [row] = await db.query<GatewayDbRow>('SELECT * FROM gateways WHERE origin = $1', [auth.keyName]);
    if (row === undefined) return fail('GATEWAY_UNKNOWN', `ledger: no gateway ${JSON.stringify(auth.keyName)} is enrolled`);
    const gw = record(row);
    if (gw.disabled) return fail('GATEWAY_DISABLED', `ledger: gateway ${gw.origin} is disabled`);
    const now = this.clock();
    try {
      verifySyncRequest(auth, this.verifier(gw), { method, path, body }, now);
    } catch (e) {
      if (!isProtocolError(e)) throw e;
      return fail('AUTH_FAILED', `ledger: ${e.message}`, e);
    }
    const fresh = await db.query('INSERT INTO nonces (gateway_id, nonce, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1 AS ok', [gw.id, auth.nonce, auth.timestamp + SYNC_AUTH_SKEW_MS]);
    if (fresh.length === 0) {
      this.counters.replays++;
      throw new LedgerError('AUTH_REPLAY', `ledger: request nonce ${toBase64Url(auth.nonce)} of ${gw.origin} was already used`);
    }
    if (now - this.noncesSwept > 60_000) {
      this.noncesSwept = now;
      await db.query('DELETE FROM nonces WHERE expires_at < $1', [now]);
    }
    return gw;
  }

  /** The ledger's view of the gateway's log (docs/protocol.md §10.3). */
  async state(gw: GatewayRecord): Promise<SyncState> {
    const [g] = await this.live().query<{ size: number; root: Uint8Array; checkpoint: string | null; staged: number }>('SELECT size, root, checkpoint, staged FROM gateways WHERE id = $1', [gw.id]);
    if (g === undefined) throw new LedgerError('GATEWAY_UNKNOWN', `ledger: gateway ${gw.origin} is not enrolled`);
    return stateOf(gw.origin, g);
  }

  /** Verifies and stores an upload (upload.ts). Throws LedgerError; refusals that concern the log carry `state`. */
  async upload(gw: GatewayRecord, body: Uint8Array): Promise<UploadResult> {
    const ctx: UploadContext = {
      db: this.live(),
      order: this.order,
      witness: this.o.witness,
      devices: this.devices,
      pool: this.pool,
      clock: this.clock,
      stats: this.counters,
      verifier: (g) => this.verifier(g),
      keepEvidence: (q, g, e) => this.keepEvidence(q, g, e),
      alert: (g, e, id) => {
        this.alert(g, e, id);
      },
    };
    try {
      return await upload(ctx, gw, body);
    } catch (e) {
      if (isLedgerError(e)) this.counters.uploadsRefused[e.code] = (this.counters.uploadsRefused[e.code] ?? 0) + 1;
      throw e;
    }
  }

  private async keepEvidence(q: Queryable, gw: GatewayRecord, e: EvidenceDraft): Promise<number> {
    const [row] = await q.query<{ id: number }>(
      'INSERT INTO evidence (gateway_id, kind, at, accepted, offending, proof, detail) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id',
      [gw.id, e.kind, this.clock(), e.accepted, e.offending, e.proof.join(' '), e.detail],
    );
    return row?.id ?? 0;
  }

  private alert(gw: GatewayRecord, e: EvidenceDraft, evidenceId: number): void {
    const a: LedgerAlert = { kind: e.kind, level: e.level, origin: gw.origin, at: this.clock(), message: `ledger: ${e.kind} on ${gw.origin}: ${e.detail}`, evidenceId };
    try {
      this.o.onAlert?.(a);
    } catch {
      // An alert sink that throws must not turn a refusal into a crash.
    }
  }

  packs(prefix: string, limit: number): Promise<PackSummary[]> {
    return this.use((db) => queries.listPacks(db, prefix, limit));
  }

  pack(serial: string): Promise<PackDetail | undefined> {
    return this.use((db) => queries.packDetail(db, serial));
  }

  history(serial: string, q: { since?: number; until?: number; after?: number; limit: number }): Promise<{ rows: HistoryRow[]; next: number | null }> {
    return this.use((db) => queries.history(db, serial, q));
  }

  proofBundle(serial: string, counter: number): Promise<string | undefined> {
    return this.use((db) => queries.proofBundle(db, this.devices, serial, counter));
  }

  passportFrames(serial: string): Promise<PassportFrame[]> {
    return this.use((db) => queries.passportFrames(db, serial));
  }

  evidence(): Promise<ForkEvidence[]> {
    return this.use((db) => queries.evidence(db));
  }

  /** What a browser needs to check a proof bundle: the witness key and every gateway's key. */
  async trustInfo(): Promise<{ witness: string; gateways: { origin: string; vkey: string }[] }> {
    const gws = await this.gateways();
    return { witness: witnessKey(this.o), gateways: gws.map((g) => ({ origin: g.origin, vkey: g.vkey })) };
  }

  /** Creates a service-engineer token: 32 random bytes, base64url, shown once; only its SHA-256 is stored. Throws TOKEN_NAME, TOKEN_EXISTS. */
  async createToken(name: string): Promise<string> {
    const db = this.live();
    if (!TOKEN_NAME.test(name)) throw new LedgerError('TOKEN_NAME', 'ledger: token name must be 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit');
    const token = toBase64Url(randomBytes(32));
    const hash = createHash('sha256').update(token).digest();
    const rows = await db.query(
      `INSERT INTO tokens (name, hash, created_at, revoked_at) VALUES ($1, $2, $3, NULL)
       ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, created_at = excluded.created_at, revoked_at = NULL WHERE tokens.revoked_at IS NOT NULL
       RETURNING name`,
      [name, hash, this.clock()],
    );
    if (rows.length === 0) throw new LedgerError('TOKEN_EXISTS', `ledger: an active token named ${name} exists (revoke it first)`);
    return token;
  }

  /** The name of the active token `token`, or undefined. Compares SHA-256 digests in constant time. */
  async verifyToken(token: string): Promise<string | undefined> {
    if (typeof token !== 'string' || token.length === 0 || token.length > 256) return undefined;
    const hash = createHash('sha256').update(token).digest();
    const rows = await this.live().query<{ name: string; hash: Uint8Array }>('SELECT name, hash FROM tokens WHERE revoked_at IS NULL');
    let found: string | undefined;
    for (const r of rows) if (r.hash.length === hash.length && timingSafeEqual(r.hash, hash)) found ??= r.name;
    return found;
  }

  /** Revokes the active token `name`. Throws TOKEN_UNKNOWN. */
  async revokeToken(name: string): Promise<void> {
    const rows = await this.live().query('UPDATE tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL RETURNING name', [name, this.clock()]);
    if (rows.length === 0) throw new LedgerError('TOKEN_UNKNOWN', `ledger: no active token named ${JSON.stringify(name)}`);
  }

  async tokens(): Promise<{ name: string; createdAt: number; revokedAt: number | null }[]> {
    const rows = await this.live().query<{ name: string; created_at: number; revoked_at: number | null }>('SELECT name, created_at, revoked_at FROM tokens ORDER BY name');
    return rows.map((r) => ({ name: r.name, createdAt: r.created_at, revokedAt: r.revoked_at === null ? null : r.revoked_at }));
  }

  /** Counters since this process opened the ledger (a copy). */
  stats(): LedgerStats {
    return structuredClone(this.counters);
  }

  /** Stops the workers and closes the storage (the embedded store's lock is released). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
    await this.db.close();
  }
}

function witnessKey(o: LedgerOptions): string {
  return formatVerifierKey(o.witness.name, o.witness.publicKey, o.witness.kind);
}
