/**
 * The ledger's schema as numbered migrations (docs/ledger.md "Storage"), applied in order at
 * start-up inside one transaction holding a PostgreSQL advisory lock, and recorded in
 * `schema_migrations`; two ledger processes starting at once on one database both succeed (the
 * second waits for the lock and finds nothing left to do). A database holding a migration this code
 * does not know (a newer ledger ran on it) is refused rather than used. The SQL is plain
 * PostgreSQL that PGlite runs unchanged.
 *
 * Tables (one row each):
 * - gateways: an enrolled gateway and its log state — accepted checkpoint size, root and cosigned
 *   note; `staged` = leaves held (≥ size). Row-locked (FOR UPDATE) by each upload.
 * - leaves: every leaf a gateway uploaded, verified or not (the tree needs them all), with its
 *   verdict (NULL = a verified frame) and the pack serial / counter it claims.
 * - hash_blocks: each gateway's Merkle tree as Go-tlog stored hashes (protocol storedHashes), 32
 *   consecutive hashes to a row (migration 3; `hashes`, one row per hash, before).
 * - certs: device certificates and intermediates the gateways sent, by SHA-256.
 * - frames: each verified frame once, by (serial, counter) (a primary key INCLUDing the history
 *   columns since migration 2, so history is an index-only scan), with decoded display columns and the
 *   first sighting; `sightings` counts the leaves (any gateway) holding it.
 * - packs, pack_gateways: per-pack and per-pack-per-gateway summaries kept up to date by uploads,
 *   so pack lists never aggregate the frames table.
 * - checkpoints: every checkpoint the ledger accepted and cosigned.
 * - evidence: fork evidence (both signed notes, the proof, the kind).
 * - nonces: request nonces until their skew window has passed (replay refusal across processes).
 * - tokens: service-engineer tokens (SHA-256 only).
 */
import { LedgerError } from '../errors.js';
import type { Db } from './driver.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE gateways (
  id          serial PRIMARY KEY,
  origin      text NOT NULL UNIQUE,
  vkey        text NOT NULL,
  label       text NOT NULL DEFAULT '',
  enrolled_at bigint NOT NULL,
  disabled    boolean NOT NULL DEFAULT false,
  size        bigint NOT NULL DEFAULT 0,
  root        bytea NOT NULL,
  checkpoint  text,
  staged      bigint NOT NULL DEFAULT 0
);
CREATE TABLE leaves (
  gateway_id  integer NOT NULL REFERENCES gateways(id),
  idx         bigint NOT NULL,
  leaf_hash   bytea NOT NULL,
  data        bytea NOT NULL,
  received_at bigint,
  cert_sha256 bytea,
  serial      text,
  counter     bigint,
  verdict     text,
  message     text,
  PRIMARY KEY (gateway_id, idx)
);
CREATE INDEX leaves_rejected ON leaves (serial) WHERE verdict IS NOT NULL;
CREATE TABLE hashes (
  gateway_id  integer NOT NULL REFERENCES gateways(id),
  n           bigint NOT NULL,
  h           bytea NOT NULL,
  PRIMARY KEY (gateway_id, n)
);
CREATE TABLE certs (
  sha256      bytea PRIMARY KEY,
  der         bytea NOT NULL,
  subject     bytea NOT NULL,
  issuer      bytea NOT NULL
);
CREATE INDEX certs_subject ON certs (subject);
CREATE TABLE frames (
  serial        text NOT NULL,
  counter       bigint NOT NULL,
  frame_sha256  bytea NOT NULL,
  gateway_id    integer NOT NULL REFERENCES gateways(id),
  idx           bigint NOT NULL,
  received_at   bigint NOT NULL,
  source        text NOT NULL,
  cert_sha256   bytea NOT NULL,
  device_time   bigint NOT NULL,
  soc           integer NOT NULL,
  soh           integer NOT NULL,
  voltage       integer NOT NULL,
  current       integer NOT NULL,
  cell_min      integer NOT NULL,
  cell_max      integer NOT NULL,
  temp_min      integer NOT NULL,
  temp_max      integer NOT NULL,
  cycles        bigint NOT NULL,
  alarms        bigint NOT NULL,
  sightings     integer NOT NULL DEFAULT 1,
  PRIMARY KEY (serial, counter)
);
CREATE TABLE packs (
  serial        text PRIMARY KEY,
  frames        bigint NOT NULL,
  first_counter bigint NOT NULL,
  last_counter  bigint NOT NULL,
  first_seen    bigint NOT NULL,
  last_seen     bigint NOT NULL
);
CREATE TABLE pack_gateways (
  serial      text NOT NULL,
  gateway_id  integer NOT NULL REFERENCES gateways(id),
  frames      bigint NOT NULL,
  first_seen  bigint NOT NULL,
  last_seen   bigint NOT NULL,
  PRIMARY KEY (serial, gateway_id)
);
CREATE TABLE checkpoints (
  gateway_id  integer NOT NULL REFERENCES gateways(id),
  size        bigint NOT NULL,
  root        bytea NOT NULL,
  note        text NOT NULL,
  accepted_at bigint NOT NULL,
  PRIMARY KEY (gateway_id, size)
);
CREATE TABLE evidence (
  id          bigserial PRIMARY KEY,
  gateway_id  integer NOT NULL REFERENCES gateways(id),
  kind        text NOT NULL,
  at          bigint NOT NULL,
  accepted    text,
  offending   text,
  proof       text NOT NULL,
  detail      text NOT NULL
);
CREATE TABLE nonces (
  gateway_id  integer NOT NULL REFERENCES gateways(id),
  nonce       bytea NOT NULL,
  expires_at  bigint NOT NULL,
  PRIMARY KEY (gateway_id, nonce)
);
CREATE INDEX nonces_expiry ON nonces (expires_at);
CREATE TABLE tokens (
  name        text PRIMARY KEY,
  hash        bytea NOT NULL,
  created_at  bigint NOT NULL,
  revoked_at  bigint
);
`,
  },
  {
    // History of one pack (queries.ts history) reads only the primary key: every column a history
    // row shows is carried in the index (INCLUDE), so 100 k rows of one pack among millions are one
    // ordered index-only range scan — no heap page per row, no sort. Same key, so ON CONFLICT
    // (serial, counter) and the exactly-once rules are unchanged.
    version: 2,
    name: 'frames primary key covers history',
    sql: `
ALTER TABLE frames DROP CONSTRAINT frames_pkey, ADD CONSTRAINT frames_pkey PRIMARY KEY (serial, counter)
  INCLUDE (received_at, gateway_id, idx, source, device_time, soc, soh, voltage, current, cell_min, cell_max, temp_min, temp_max, cycles, alarms, sightings)
`,
  },
  {
    // Catch-up cost per entry (bench/ledger-catchup.ts). A gateway's stored hashes are appended
    // densely (indexes storedHashCount(staged) … in order, tree.ts appendLeaves), so they are kept
    // HASH_BLOCK (32) to a row: row `block` holds hashes [32·block, 32·block + 32) concatenated
    // (1 KiB, below PostgreSQL's TOAST threshold) — one row per ~16 leaves instead of ~2 rows per
    // leaf. The per-row foreign-key checks of the two tables written once per leaf (leaves, frames)
    // are dropped: each ran a lookup of the gateway per inserted row (≈ 5 µs), and both tables are
    // written only inside an upload holding its gateway's row lock (FOR UPDATE), gateways are never
    // deleted, so the reference cannot dangle. Existing hashes move over unchanged.
    version: 3,
    name: 'tree hashes in blocks; no per-row gateway checks on leaves and frames',
    sql: `
CREATE TABLE hash_blocks (
  gateway_id  integer NOT NULL REFERENCES gateways(id),
  block       bigint NOT NULL,
  h           bytea NOT NULL,
  PRIMARY KEY (gateway_id, block)
);
INSERT INTO hash_blocks (gateway_id, block, h)
  SELECT gateway_id, n / 32, string_agg(h, ''::bytea ORDER BY n) FROM hashes GROUP BY gateway_id, n / 32;
DROP TABLE hashes;
ALTER TABLE leaves DROP CONSTRAINT leaves_gateway_id_fkey;
ALTER TABLE frames DROP CONSTRAINT frames_gateway_id_fkey
`,
  },
];

/** Arbitrary constant naming the ledger's migration lock among the database's advisory locks. */
const MIGRATION_LOCK = 0x7061636b; // "pack"

/**
 * Applies every migration not yet recorded, in version order, in one transaction under
 * pg_advisory_xact_lock. Throws STORAGE_CONFIG when the database records a version this code does
 * not know, STORAGE when a statement fails (nothing is applied then).
 */
export async function migrate(db: Db, clock: () => number = Date.now): Promise<number[]> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await tx.query('CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)');
    const rows = await tx.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    const have = new Set(rows.map((r) => r.version));
    const known = new Set(MIGRATIONS.map((m) => m.version));
    const unknown = [...have].filter((v) => !known.has(v));
    if (unknown.length > 0) {
      throw new LedgerError('STORAGE_CONFIG', `ledger: the database has schema version ${Math.max(...unknown)}, newer than this ledger knows (${Math.max(...known)}); upgrade the ledger`);
    }
    const applied: number[] = [];
    for (const m of [...MIGRATIONS].sort((a, b) => a.version - b.version)) {
      if (have.has(m.version)) continue;
      for (const stmt of m.sql.split(/;\s*\n/).map((s) => s.trim()).filter((s) => s !== '')) await tx.query(stmt);
      await tx.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, clock()]);
      applied.push(m.version);
    }
    return applied;
  });
}
