/**
 * One gateway upload, end to end (docs/ledger.md "Verification and witnessing", "Fork detection";
 * docs/protocol.md §10): decode and check the body, judge the new leaves (judge.ts), then — in one
 * transaction holding the gateway's row lock (SELECT … FOR UPDATE, so uploads of one gateway are
 * serialised across ledger processes) — compare the leaves the ledger already holds by hash,
 * append the new ones to the gateway's tree, judge the checkpoint against the accepted one and the
 * ledger's own root, and store leaves, hashes, frames (exactly once per (serial, counter)) and the
 * new state. A refusal rolls the whole upload back; fork evidence is then written on its own and
 * an alert raised. The same upload twice gives the same answer and stores nothing twice.
 *
 * On PostgreSQL the transaction starts while the workers still verify signatures: everything that
 * needs no verdict (held leaves, tree, checkpoint, hashes) comes first, then the leaves chunk by
 * chunk as their verdicts arrive, then the frames of the whole upload in one sorted statement.
 *
 * A gateway's sync client keeps more than one upload on the wire (consecutive ranges): they are
 * judged at once, and within this process each enters its transaction only after those of the same
 * gateway with a lower `from` (UploadOrder), so the next upload's signatures are verified while the
 * previous one's rows are written, and requests that overtook each other on the way in are not
 * refused for a gap. (Across ledger processes an overtaking upload is refused UPLOAD_GAP and the
 * client sends it again.)
 */
import {
  addSignatures,
  bytesEqual,
  checkConsistentCheckpoints,
  decodeUploadRequest,
  isProtocolError,
  openCheckpoint,
  toBase64,
  toHex,
  treeHash,
  MAX_RESULT_REJECTS,
  type Ed25519NoteSigner,
  type EntryReject,
  type NoteVerifier,
  type OpenedCheckpoint,
  type SyncState,
  type UploadRequest,
  type UploadResult,
} from '../protocol/index.js';
import type { DeviceResolver } from './certs.js';
import type { Db, Queryable } from './db/driver.js';
import { LedgerError, type LedgerErrorCode } from './errors.js';
import { hashEntries, judgeLeaves, VERIFY_CHUNK, type JudgedLeaf, type Judging } from './judge.js';
import { indexed, intList, storeFrames } from './store-frames.js';
import { appendLeaves, concatBytes, insertHashes, MapReader, withHashes } from './tree.js';
import type { EvidenceKind, GatewayRecord, LedgerStats } from './types.js';
import type { VerifyPool } from './verify-pool.js';

export interface UploadContext {
  readonly db: Db;
  readonly order: UploadOrder;
  readonly witness: Ed25519NoteSigner;
  readonly devices: DeviceResolver;
  readonly pool: VerifyPool;
  readonly clock: () => number;
  readonly stats: LedgerStats;
  verifier(gw: GatewayRecord): NoteVerifier;
  /** Records evidence (outside any refused transaction) and raises the alert. */
  keepEvidence(q: Queryable, gw: GatewayRecord, e: EvidenceDraft): Promise<number>;
  alert(gw: GatewayRecord, e: EvidenceDraft, id: number): void;
}

export interface EvidenceDraft {
  readonly kind: EvidenceKind;
  readonly level: 'error' | 'warning';
  readonly accepted: string | null;
  readonly offending: string | null;
  readonly proof: readonly string[];
  readonly detail: string;
}

interface GatewayRow {
  size: number;
  root: Uint8Array;
  checkpoint: string | null;
  staged: number;
}

interface Outcome {
  readonly result: UploadResult;
  readonly equivocations: [EvidenceDraft, number][];
  readonly rejected: JudgedLeaf[];
  readonly counts: { readonly framesStored: number; readonly framesSeenAgain: number; readonly cosigned: boolean };
}

/** A refusal raised inside the transaction: rolled back, then evidence (if any) kept. */
class Refusal extends Error {
  constructor(
    readonly error: LedgerError,
    readonly evidence?: EvidenceDraft,
  ) {
    super(error.message);
  }
}

export function stateOf(origin: string, g: GatewayRow): SyncState {
  return { origin, size: g.size, rootHash: g.root, checkpoint: g.checkpoint, staged: g.staged };
}

function refuse(code: LedgerErrorCode, message: string, state?: SyncState, evidence?: EvidenceDraft): never {
  throw new Refusal(new LedgerError(code, message, state === undefined ? undefined : { state }), evidence);
}

function decode(body: Uint8Array): UploadRequest {
  try {
    return decodeUploadRequest(body);
  } catch (e) {
    if (isProtocolError(e)) throw new LedgerError('UPLOAD_MALFORMED', `ledger: upload body: ${e.message}`, { cause: e });
    throw e;
  }
}

function openCp(req: UploadRequest, gw: GatewayRecord, verifier: NoteVerifier): OpenedCheckpoint | undefined {
  if (req.checkpoint === undefined) return undefined;
  try {
    return openCheckpoint(req.checkpoint, { origin: gw.origin, verifiers: [verifier] });
  } catch (e) {
    if (!isProtocolError(e)) throw e;
    if (e.code === 'CHECKPOINT_ORIGIN') throw new LedgerError('ORIGIN_MISMATCH', `ledger: checkpoint: ${e.message}`, { cause: e });
    throw new LedgerError('CHECKPOINT_SIGNATURE', `ledger: checkpoint refused (${e.code}): ${e.message}`, { cause: e });
  }
}

/** How long an upload that finds a gap waits for the upload before it to arrive, ms; and how often. */
const GAP_GRACE_MS = 1000;
const MAX_GAP_WAITS = 4;

/** One upload's place among its gateway's uploads in progress in this process (UploadOrder). */
interface Turn {
  /** Resolves when every upload registered now with a lower `from` has finished. */
  before(): Promise<void>;
  /** Whether an upload with a lower `from` is in progress now, or starts within `ms`. */
  earlier(ms: number): Promise<boolean>;
  /** Call once when the upload is done, whatever its outcome. */
  leave(): void;
}

/**
 * The uploads of each gateway in progress in this process, by the first index they carry: an
 * upload waits for those with a lower `from` to finish before it takes the gateway's row lock (see
 * the file comment); one that registered only after it started waiting (a request that was
 * overtaken on the way in) is waited for when the transaction finds the gap. Only lower `from`s
 * are waited for, so waits never form a cycle.
 */
export class UploadOrder {
  private readonly running = new Map<number, Set<{ readonly from: number; readonly done: Promise<void> }>>();
  /** Waiting for an upload of gateway `id` below `from` to start: called on each enter. */
  private readonly watchers = new Set<{ readonly id: number; readonly from: number; readonly wake: () => void }>();

  /** Registers an upload of gateway `id` starting at `from`. */
  enter(id: number, from: number): Turn {
    let set = this.running.get(id);
    if (set === undefined) {
      set = new Set();
      this.running.set(id, set);
    }
    let leave: () => void = () => undefined;
    const me = { from, done: new Promise<void>((resolve) => (leave = resolve)) };
    set.add(me);
    for (const w of this.watchers) if (w.id === id && from < w.from) w.wake();
    const all = set;
    return {
      before: async () => {
        await Promise.all([...all].filter((r) => r.from < from).map((r) => r.done));
      },
      earlier: async (ms) => {
        if ([...all].some((r) => r.from < from)) return true;
        let wake: (arrived: boolean) => void = () => undefined;
        const arrived = new Promise<boolean>((resolve) => (wake = resolve));
        const watcher = { id, from, wake: () => { wake(true); } };
        this.watchers.add(watcher);
        const timer = setTimeout(() => { wake(false); }, ms);
        try {
          return await arrived;
        } finally {
          clearTimeout(timer);
          this.watchers.delete(watcher);
        }
      },
      leave: () => {
        all.delete(me);
        if (all.size === 0 && this.running.get(id) === all) this.running.delete(id);
        leave();
      },
    };
  }
}

/** Uploads `body` for the authenticated gateway `gw`. Throws LedgerError (see errors.ts, the upload group). */
export async function upload(ctx: UploadContext, gw: GatewayRecord, body: Uint8Array): Promise<UploadResult> {
  const req = decode(body);
  if (req.origin !== gw.origin) throw new LedgerError('ORIGIN_MISMATCH', `ledger: upload for ${JSON.stringify(req.origin)} from gateway ${gw.origin}`);
  const turn = ctx.order.enter(gw.id, req.from);
  try {
    return await uploadInTurn(ctx, gw, req, turn);
  } finally {
    turn.leave();
  }
}

async function uploadInTurn(ctx: UploadContext, gw: GatewayRecord, req: UploadRequest, turn: Turn): Promise<UploadResult> {
  const cp = openCp(req, gw, ctx.verifier(gw));
  const hashes = hashEntries(req.entries);
  const pre = await ctx.db.query<{ staged: number }>('SELECT staged FROM gateways WHERE id = $1', [gw.id]);
  const preStaged = pre[0]?.staged ?? 0;
  const skip = Math.min(req.entries.length, Math.max(0, preStaged - req.from));
  const judged = await judgeLeaves(ctx.db, ctx.devices, ctx.pool, req.entries, hashes, skip, req.certs);
  // PGlite has one connection: never hold it while workers verify (every other query would wait).
  if (ctx.db.kind === 'embedded') await judged.until(judged.leaves.length);
  let outcome: Outcome;
  try {
    for (let attempt = 1; ; attempt++) {
      await turn.before();
      try {
        outcome = await ctx.db.transaction((tx) => commit(ctx, tx, gw, req, cp, hashes, judged, preStaged));
        break;
      } catch (e) {
        // A gap: this upload may have overtaken the one before it on the way in (another connection);
        // when that one is here or arrives shortly, wait for it and try again (the lock is released).
        if (e instanceof Refusal && e.error.code === 'UPLOAD_GAP' && attempt < MAX_GAP_WAITS && (await turn.earlier(GAP_GRACE_MS))) continue;
        throw e;
      }
    }
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    if (e.evidence !== undefined) {
      if (e.evidence.kind === 'bad-proof') ctx.stats.badProofs++;
      else ctx.stats.conflicts++;
      const id = await ctx.keepEvidence(ctx.db, gw, e.evidence);
      ctx.alert(gw, e.evidence, id);
    }
    throw e.error;
  }
  ctx.stats.uploads++;
  ctx.stats.entriesStored += outcome.result.stored;
  ctx.stats.duplicates += outcome.result.duplicates;
  ctx.stats.framesStored += outcome.counts.framesStored;
  ctx.stats.framesSeenAgain += outcome.counts.framesSeenAgain;
  if (outcome.counts.cosigned) ctx.stats.checkpointsCosigned++;
  for (const [e, id] of outcome.equivocations) {
    ctx.stats.equivocations++;
    ctx.alert(gw, e, id);
  }
  for (const j of outcome.rejected) if (j.verdict !== null) ctx.stats.framesRejected[j.verdict] = (ctx.stats.framesRejected[j.verdict] ?? 0) + 1;
  return outcome.result;
}

async function commit(
  ctx: UploadContext,
  tx: Queryable,
  gw: GatewayRecord,
  req: UploadRequest,
  cp: OpenedCheckpoint | undefined,
  hashes: readonly Uint8Array[],
  judged: Judging,
  preStaged: number,
): Promise<Outcome> {
  const rows = await tx.query<GatewayRow>('SELECT size, root, checkpoint, staged FROM gateways WHERE id = $1 FOR UPDATE', [gw.id]);
  const g = rows[0];
  if (g === undefined) throw new LedgerError('GATEWAY_UNKNOWN', `ledger: gateway ${gw.origin} is not enrolled`);
  const size = g.size;
  const staged = g.staged;
  const end = req.from + req.entries.length;
  if (req.from > staged) refuse('UPLOAD_GAP', `ledger: upload starts at ${req.from}, the ledger holds leaves [0, ${staged}) of ${gw.origin}`, stateOf(gw.origin, g));

  // Leaves the ledger holds must come again with the same hash.
  const heldEnd = Math.min(end, staged);
  let duplicates = 0;
  if (heldEnd > req.from) {
    const held = await tx.query<{ idx: number; leaf_hash: Uint8Array }>('SELECT idx, leaf_hash FROM leaves WHERE gateway_id = $1 AND idx >= $2 AND idx < $3', [gw.id, req.from, heldEnd]);
    for (const h of held) {
      const i = h.idx;
      const mine = hashes[i - req.from] as Uint8Array;
      if (!bytesEqual(mine, h.leaf_hash)) {
        const detail = `index ${i}: held leaf hash ${toHex(h.leaf_hash)}, uploaded ${toHex(mine)}`;
        refuse('ENTRY_CONFLICT', `ledger: ${gw.origin} sent another leaf at held index ${i} (${detail})`, stateOf(gw.origin, g), {
          kind: 'entry-conflict', level: 'error', accepted: g.checkpoint, offending: req.checkpoint ?? null, proof: [], detail,
        });
      }
    }
    duplicates = heldEnd - req.from;
  }

  // New leaves [staged, end): judged (their signatures possibly still being verified) from preStaged ≤ staged.
  const off = staged - Math.max(req.from, preStaged);
  const fresh = end > staged ? judged.leaves.slice(off) : [];
  const reader = new MapReader();
  await withHashes(tx, gw.id, reader, () => treeHash(staged, reader));
  const newHashes = appendLeaves(staged, fresh.map((j) => j.leafHash), reader);
  const newStaged = Math.max(staged, end);

  // The checkpoint, judged against the accepted one and the ledger's own tree.
  let cosigned: string | null = null;
  let accept: { size: number; root: Uint8Array; note: string } | undefined;
  if (cp !== undefined && req.checkpoint !== undefined) {
    const state = (): SyncState => stateOf(gw.origin, g);
    const proof = (req.proof ?? []).map(toBase64);
    const evidence = (kind: EvidenceKind, level: 'error' | 'warning', detail: string): EvidenceDraft => ({
      kind, level, accepted: g.checkpoint, offending: req.checkpoint ?? null, proof, detail,
    });
    if (cp.size > newStaged) refuse('CHECKPOINT_BEYOND_ENTRIES', `ledger: checkpoint of size ${cp.size} but the ledger holds ${newStaged} leaves of ${gw.origin} after this upload`, state());
    const own = await withHashes(tx, gw.id, reader, () => treeHash(cp.size, reader));
    const roots = `checkpoint size ${cp.size} root ${toBase64(cp.rootHash)}; ledger's root at that size ${toBase64(own)}; accepted size ${size} root ${toBase64(g.root)}`;
    if (cp.size <= size) {
      if (!bytesEqual(own, cp.rootHash)) {
        refuse('CHECKPOINT_CONFLICT', `ledger: ${gw.origin} signed another tree of size ${cp.size} than the one the ledger holds (${roots})`, state(), evidence('checkpoint-conflict', 'error', roots));
      }
      if (cp.size === size) cosigned = g.checkpoint;
    } else {
      // The proof is used only to extend the accepted checkpoint, so it must start there. (A
      // checkpoint at or below the accepted size is judged by the ledger's own root alone, which
      // makes a repeated upload — its proofFrom now stale — get the same answer as the first.)
      if (req.proofFrom !== size) refuse('CHECKPOINT_STALE', `ledger: proof from size ${req.proofFrom}, but the accepted checkpoint of ${gw.origin} has size ${size}`, state());
      let proofOk = true;
      let why = '';
      try {
        checkConsistentCheckpoints({ origin: gw.origin, size, rootHash: g.root, extensions: [] }, cp, req.proof ?? []);
      } catch (e) {
        if (!isProtocolError(e)) throw e;
        proofOk = false;
        why = e.message;
      }
      const leavesAgree = bytesEqual(own, cp.rootHash);
      if (!proofOk && leavesAgree) {
        refuse('CONSISTENCY_PROOF_INVALID', `ledger: the consistency proof from ${size} to ${cp.size} does not verify (${why}); the leaves give the signed root`, state(), evidence('bad-proof', 'warning', `${roots}; ${why}`));
      }
      if (!proofOk) {
        refuse('CHECKPOINT_CONFLICT', `ledger: ${gw.origin} signed a tree that does not extend its accepted checkpoint (${why}; ${roots})`, state(), evidence('checkpoint-conflict', 'error', `${roots}; ${why}`));
      }
      if (!leavesAgree) refuse('ENTRIES_MISMATCH', `ledger: the consistency proof verifies but the leaves held do not give the checkpoint's root (${roots})`, state());
      cosigned = addSignatures(req.checkpoint, [ctx.witness]);
      accept = { size: cp.size, root: cp.rootHash, note: cosigned };
    }
  }

  // Writes: hashes; the leaves chunk by chunk as their signatures are verified (the workers verify
  // the next chunks meanwhile); the frames exactly once, in one statement sorted by (serial, counter)
  // across the whole upload (lock order); the state.
  const now = ctx.clock();
  const binary = ctx.db.kind === 'postgres';
  await insertHashes(tx, gw.id, newHashes, binary);
  const chunk = ctx.db.kind === 'embedded' ? Math.max(1, fresh.length) : VERIFY_CHUNK; // embedded: verdicts are all in already
  for (let lo = 0; lo < fresh.length; lo += chunk) {
    const hi = Math.min(fresh.length, lo + chunk);
    await judged.until(off + hi);
    await insertLeaves(tx, gw.id, staged + lo, fresh.slice(lo, hi), binary);
  }
  const frames = await storeFrames(tx, gw, staged, fresh, binary);
  const equivocations = frames.equivocations;
  await markEquivocations(tx, gw.id, staged, fresh);
  const kept: [EvidenceDraft, number][] = [];
  for (const e of equivocations) kept.push([e, await ctx.keepEvidence(tx, gw, e)]);
  const next: GatewayRow = accept === undefined ? { ...g, staged: newStaged } : { size: accept.size, root: accept.root, checkpoint: accept.note, staged: newStaged };
  await tx.query('UPDATE gateways SET staged = $2, size = $3, root = $4, checkpoint = $5 WHERE id = $1', [gw.id, newStaged, next.size, next.root, next.checkpoint]);
  if (accept !== undefined) {
    await tx.query('INSERT INTO checkpoints (gateway_id, size, root, note, accepted_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING', [gw.id, accept.size, accept.root, accept.note, now]);
  }
  const rejected = fresh.filter((j) => j.verdict !== null);
  const rejects: EntryReject[] = [];
  fresh.forEach((j, k) => {
    if (j.verdict !== null && rejects.length < MAX_RESULT_REJECTS) rejects.push({ index: staged + k, code: j.verdict, message: j.message ?? '' });
  });
  const result: UploadResult = { state: stateOf(gw.origin, next), stored: fresh.length, duplicates, rejected: rejected.length, rejects, cosigned };
  return { result, equivocations: kept, rejected, counts: { framesStored: frames.stored, framesSeenAgain: frames.seenAgain, cosigned: accept !== undefined } };
}

/** Leaves storeFrames found to be device equivocations (inserted before it ran) get that verdict. */
async function markEquivocations(tx: Queryable, gatewayId: number, from: number, fresh: readonly JudgedLeaf[]): Promise<void> {
  const eq = fresh.flatMap((j, k) => (j.verdict === 'FRAME_EQUIVOCATION' ? [{ idx: from + k, message: j.message }] : []));
  if (eq.length === 0) return;
  await tx.query(
    `UPDATE leaves l SET verdict = 'FRAME_EQUIVOCATION', message = u.m FROM unnest($2::bigint[], $3::text[]) AS u(i, m)
     WHERE l.gateway_id = $1 AND l.idx = u.i`,
    [gatewayId, eq.map((e) => e.idx), eq.map((e) => e.message)],
  );
}

/**
 * One INSERT for the leaves. The bytes travel as two binary parameters — every leaf hash (32 bytes
 * each) and every leaf's data concatenated, cut apart in SQL by `ends` — rather than bytea[] arrays,
 * which node-postgres would render as hex text element by element (on the ledger's main thread).
 * PGlite (`binary` false) serialises a big bytea parameter more slowly than bytea[] (measured), so
 * the embedded store keeps the arrays. On both, numbers go as array literal strings and the few
 * distinct certificate hashes and serials as short lists indexed per leaf (store-frames.ts).
 */
async function insertLeaves(tx: Queryable, gatewayId: number, from: number, fresh: readonly JudgedLeaf[], binary: boolean): Promise<void> {
  const n = fresh.length;
  if (n === 0) return;
  const leaf = (i: number): JudgedLeaf => fresh[i] as JudgedLeaf;
  const certs = indexed(n, (i) => (leaf(i).certSha256 === null ? null : leaf(i).certHex), (i) => leaf(i).certSha256);
  const serials = indexed(n, (i) => leaf(i).serial, (i) => leaf(i).serial);
  const common = [
    intList(n, (i) => leaf(i).receivedAt),
    certs.index,
    serials.index,
    intList(n, (i) => leaf(i).counter),
    fresh.map((j) => j.verdict),
    fresh.map((j) => j.message),
    certs.distinct,
    serials.distinct,
  ];
  if (!binary) {
    await tx.query(
      `INSERT INTO leaves (gateway_id, idx, leaf_hash, data, received_at, cert_sha256, serial, counter, verdict, message)
       SELECT $1, $2::bigint + u.k - 1, u.h, u.d, u.r, ($11::bytea[])[u.c], ($12::text[])[u.s], u.n, u.v, u.m
       FROM unnest($3::bytea[], $4::bytea[], $5::bigint[], $6::int[], $7::int[], $8::bigint[], $9::text[], $10::text[])
         WITH ORDINALITY AS u(h, d, r, c, s, n, v, m, k)`,
      [gatewayId, from, fresh.map((j) => j.leafHash), fresh.map((j) => j.data), ...common],
    );
    return;
  }
  const data = concatBytes(fresh.map((j) => j.data));
  await tx.query(
    `INSERT INTO leaves (gateway_id, idx, leaf_hash, data, received_at, cert_sha256, serial, counter, verdict, message)
     SELECT $1, $2::bigint + u.k - 1, substring($3::bytea FROM (u.k::int - 1) * 32 + 1 FOR 32), substring($4::bytea FROM u.a + 1 FOR u.b - u.a),
            u.r, ($13::bytea[])[u.c], ($14::text[])[u.s], u.n, u.v, u.m
     FROM unnest($5::int[], $6::int[], $7::bigint[], $8::int[], $9::int[], $10::bigint[], $11::text[], $12::text[])
       WITH ORDINALITY AS u(a, b, r, c, s, n, v, m, k)`,
    [gatewayId, from, concatBytes(fresh.map((j) => j.leafHash)).bytes, data.bytes, intList(n, (i) => data.starts[i] ?? 0), intList(n, (i) => data.ends[i] ?? 0), ...common],
  );
}
