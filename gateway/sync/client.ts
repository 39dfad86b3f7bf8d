/**
 * SyncClient: store-and-forward of the gateway's durable log to the upstream ledger (issue 7 item
 * 5; docs/gateway.md "Sync to the ledger"). One loop per store. A round asks the ledger for its
 * state of this log (the cursor: nothing is kept locally that could disagree with it, so restarts
 * and outages resume exactly where the ledger is), checks that state against the log (same root at
 * the ledger's accepted size, nothing beyond the log), then uploads leaves [staged, cp.size) in
 * batches with the latest signed checkpoint and its consistency proof on the last batch. Only when
 * the ledger accepts a checkpoint is the store told (markSynced), and only then may retention
 * prune; the cosigned checkpoint is kept for `gateway prove`. Up to maxInFlightBatches uploads are
 * on the wire at once (consecutive ranges, bounded in count and bytes; the ledger takes them in
 * order of their first index and verifies the next while it stores the previous), their answers
 * taken in order. Failures are counted by code and retried with
 * capped exponential backoff and full jitter; a 409 UPLOAD_GAP or CHECKPOINT_STALE (the ledger's
 * cursor moved) re-reads the state at once. Nothing the ledger answers can crash the gateway.
 */
import { isProtocolError, openCheckpoint, verifierOf, type Ed25519NoteSigner, type NoteVerifier, type SyncState, type UploadResult } from '../../protocol/index.js';
import { GatewayError, isGatewayError } from '../errors.js';
import type { Logger } from '../ops/logger.js';
import type { StoredCheckpoint } from '../store/checkpoints.js';
import { backoffDelay, checkBackoff, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff.js';
import { clampBatchBytes, clampBatchEntries, uploadBatches, type Batch, type ChainLookup, type SyncStore } from './batches.js';
import { readCosigned, writeCosigned, type CosignedCheckpoint } from './cosigned.js';
import { LedgerHttp, refusalOf } from './ledger-http.js';

/**
 * Uploads on the wire at once by default: with three the ledger always has the next upload's
 * signatures to verify while it stores one (with one its cores idle ≈ 12 % of a catch-up, with two
 * ≈ 6 %, with three ≈ 2 %: bench/ledger-catchup.ts), for 3 × maxBatchBytes of memory here.
 */
export const DEFAULT_IN_FLIGHT = 3;

export interface SyncClientOptions {
  /** The ledger's base URL (config upstream.url). */
  readonly url: string;
  readonly store: SyncStore;
  /** Certificate chains by device-certificate SHA-256 (CertStore.chain). */
  readonly chains: ChainLookup;
  /** The gateway's log key: signs requests; its verifier checks the checkpoints the ledger returns. */
  readonly signer: Ed25519NoteSigner;
  /** Where the cosigned checkpoint is kept (`<dataDir>/sync/`). */
  readonly dataDir: string;
  /** Pause between rounds when caught up, ms. */
  readonly intervalMs: number;
  /** One request, ms. */
  readonly timeoutMs: number;
  /** Leaves per upload; clamped to protocol MAX_UPLOAD_ENTRIES. */
  readonly maxBatchEntries: number;
  /** Upload body size, bytes; clamped to protocol MAX_UPLOAD_BYTES (default 4 MiB). */
  readonly maxBatchBytes?: number;
  /** Uploads on the wire at once (default 3; each read from disk just before it is sent): in-flight bytes ≤ this × maxBatchBytes. */
  readonly maxInFlightBatches?: number;
  readonly backoff?: BackoffPolicy;
  /** The ledger's witness verifier key: when set, every cosigned checkpoint must carry its valid cosignature. */
  readonly witness?: NoteVerifier;
  readonly logger?: Logger;
  /** ms since the epoch (default Date.now). */
  readonly now?: () => number;
  /** [0, 1) for the backoff jitter (default Math.random). */
  readonly random?: () => number;
  /** Request nonces (default 16 random bytes from node:crypto). */
  readonly nonce?: () => Uint8Array;
}

/** What status and metrics show of the sync client (all counters since start). */
export interface SyncClientStatus {
  readonly running: boolean;
  /** The ledger's last known state of this log: accepted size and leaves held. */
  readonly ledgerSize?: number;
  readonly ledgerStaged?: number;
  /** Tree size of the kept cosigned checkpoint. */
  readonly cosignedSize?: number;
  /** End of the last round that succeeded (ms). */
  readonly lastSyncAt?: number;
  readonly lastError?: string;
  readonly lastErrorCode?: string;
  readonly lastErrorAt?: number;
  readonly consecutiveFailures: number;
  /** When the next round starts after a failure (ms); absent while idle or running. */
  readonly nextAttemptAt?: number;
  readonly rounds: number;
  readonly uploads: number;
  /** Leaves the ledger newly stored, already held, and stored but refused as frames. */
  readonly entriesStored: number;
  readonly entriesDuplicate: number;
  readonly entriesRejected: number;
  readonly checkpointsAccepted: number;
  readonly bytesSent: number;
  readonly requests: number;
  /** Ledger answers that failed to parse or check. */
  readonly parseErrors: number;
  /** Leaves sent without their certificate chain (not in the certificate store). */
  readonly missingChains: number;
  readonly errors: Readonly<Record<string, number>>;
}

/** How many times a round re-reads the state at once after a 409 before it backs off. */
const MAX_IMMEDIATE_RETRIES = 3;
const DEFAULT_BATCH_BYTES = 4 * 1024 * 1024;

/** Stores with a running loop: never two loops on one store in a process (the store's lock covers processes). */
const active = new WeakSet<object>();

export class SyncClient {
  readonly #o: SyncClientOptions;
  readonly #http: LedgerHttp;
  readonly #now: () => number;
  readonly #verifier: NoteVerifier;
  readonly #backoff: BackoffPolicy;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #inFlight: number;
  readonly #errors: Record<string, number> = {};
  #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #stopped = false;
  #wake: (() => void) | undefined;
  #kicked = false;
  #state: SyncState | undefined;
  #cosigned: CosignedCheckpoint | undefined;
  #lastSyncAt: number | undefined;
  #lastError: { code: string; message: string; at: number } | undefined;
  #failures = 0;
  #nextAttemptAt: number | undefined;
  #counts = { rounds: 0, uploads: 0, entriesStored: 0, entriesDuplicate: 0, entriesRejected: 0, checkpointsAccepted: 0, missingChains: 0 };

  /** Checks the options; start() runs the loop. Throws SYNC_CONFIG. */
  constructor(o: SyncClientOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#backoff = o.backoff ?? DEFAULT_BACKOFF;
    checkBackoff(this.#backoff);
    for (const [k, v, lo, hi] of [['intervalMs', o.intervalMs, 1, 86_400_000], ['timeoutMs', o.timeoutMs, 1, 600_000], ['maxBatchEntries', o.maxBatchEntries, 1, 1 << 30], ['maxInFlightBatches', o.maxInFlightBatches ?? DEFAULT_IN_FLIGHT, 1, 16]] as const) {
      if (!Number.isSafeInteger(v) || v < lo || v > hi) throw new GatewayError('SYNC_CONFIG', `gateway: sync: ${k} ${String(v)}: expected an integer ${lo}..${hi}`);
    }
    this.#maxEntries = clampBatchEntries(o.maxBatchEntries);
    this.#maxBytes = clampBatchBytes(o.maxBatchBytes ?? DEFAULT_BATCH_BYTES);
    this.#inFlight = o.maxInFlightBatches ?? DEFAULT_IN_FLIGHT;
    this.#verifier = verifierOf(o.signer);
    if (o.signer.name !== o.store.origin) throw new GatewayError('SYNC_CONFIG', `gateway: sync: the signer is ${o.signer.name}, expected the log's origin ${o.store.origin}`);
    this.#http = new LedgerHttp({ url: o.url, signer: o.signer, timeoutMs: o.timeoutMs, now: this.#now, ...(o.nonce === undefined ? {} : { nonce: o.nonce }) });
  }

  /** Effective batch limits after clamping to the protocol's caps. */
  get limits(): { readonly maxBatchEntries: number; readonly maxBatchBytes: number; readonly maxInFlightBatches: number } {
    return { maxBatchEntries: this.#maxEntries, maxBatchBytes: this.#maxBytes, maxInFlightBatches: this.#inFlight };
  }

  /**
   * Loads the kept cosigned checkpoint and starts the loop. Throws SYNC_CONFIG when a loop already
   * runs on this store or this client was started before. A damaged cosigned-checkpoint file is
   * logged and replaced by the next one, never fatal.
   */
  async start(): Promise<void> {
    if (this.#loop !== undefined || this.#stopped) throw new GatewayError('SYNC_CONFIG', 'gateway: sync: start() on a client that was started before');
    if (active.has(this.#o.store)) throw new GatewayError('SYNC_CONFIG', `gateway: sync: a sync loop already runs on the log ${this.#o.store.origin}`);
    active.add(this.#o.store);
    try {
      this.#cosigned = await readCosigned(this.#o.dataDir, this.#o.store.origin, this.#verifier);
    } catch (e) {
      this.#o.logger?.warn({ err: e }, 'gateway: sync: the kept cosigned checkpoint is unreadable; the next accepted one replaces it');
    }
    this.#loop = this.#run();
  }

  /** Asks for a round now (a new checkpoint was signed). Does not cut a backoff short. */
  kick(): void {
    this.#kicked = true;
    if (this.#failures === 0) this.#wake?.();
  }

  /** Stops the loop: aborts a request on the wire and waits for the round to end. Idempotent; never throws. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    this.#wake?.();
    await this.#loop;
    active.delete(this.#o.store);
  }

  status(): SyncClientStatus {
    const s = this.#state;
    const h = this.#http.stats;
    return {
      running: this.#loop !== undefined && !this.#stopped,
      ...(s === undefined ? {} : { ledgerSize: s.size, ledgerStaged: s.staged }),
      ...(this.#cosigned === undefined ? {} : { cosignedSize: this.#cosigned.size }),
      ...(this.#lastSyncAt === undefined ? {} : { lastSyncAt: this.#lastSyncAt }),
      ...(this.#lastError === undefined ? {} : { lastError: this.#lastError.message, lastErrorCode: this.#lastError.code, lastErrorAt: this.#lastError.at }),
      consecutiveFailures: this.#failures,
      ...(this.#nextAttemptAt === undefined ? {} : { nextAttemptAt: this.#nextAttemptAt }),
      ...this.#counts,
      bytesSent: h.bytesSent,
      requests: h.requests,
      parseErrors: h.parseErrors,
      errors: { ...this.#errors },
    };
  }

  /** The kept cosigned checkpoint (for `gateway prove`), if any. */
  get cosigned(): CosignedCheckpoint | undefined {
    return this.#cosigned;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      let delay: number;
      try {
        this.#kicked = false;
        const more = await this.#round();
        if (this.#failures > 0) this.#o.logger?.info({ failures: this.#failures }, 'gateway: sync: the ledger answers again');
        this.#failures = 0;
        this.#lastSyncAt = this.#now();
        delay = more || this.#wasKicked() ? 0 : this.#o.intervalMs;
      } catch (e) {
        if (this.#isStopped()) break;
        this.#failed(e);
        delay = backoffDelay(this.#backoff, this.#failures, this.#o.random ?? Math.random);
        this.#nextAttemptAt = this.#now() + delay;
      }
      await this.#sleep(delay);
      this.#nextAttemptAt = undefined;
    }
  }

  // Methods, not fields, in the loop: the flags change across awaits, which flow analysis cannot see.
  #wasKicked(): boolean {
    return this.#kicked;
  }
  #isStopped(): boolean {
    return this.#stopped;
  }

  #failed(e: unknown): void {
    this.#failures++;
    const code = isGatewayError(e) ? e.code : 'INTERNAL';
    const message = e instanceof Error ? e.message : String(e);
    this.#errors[code] = (this.#errors[code] ?? 0) + 1;
    const repeat = this.#lastError?.code === code && this.#failures > 1;
    this.#lastError = { code, message, at: this.#now() };
    const log = this.#o.logger;
    if (code === 'INTERNAL') log?.error({ err: e, failures: this.#failures }, 'gateway: sync: unexpected error (a bug; retrying)');
    else if (code === 'SYNC_DIVERGED' || code === 'SYNC_PRUNED' || code === 'SYNC_WITNESS') log?.error({ code, failures: this.#failures }, message);
    else if (!repeat || this.#failures % 20 === 0) log?.warn({ code, failures: this.#failures }, message);
  }

  #sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.#wake = () => {
        this.#wake = undefined;
        done();
      };
    });
  }

  /** One round. Returns true when more is due at once (a newer checkpoint was signed meanwhile). */
  async #round(): Promise<boolean> {
    this.#counts.rounds++;
    const signal = this.#abort.signal;
    let state = await this.#http.state(signal);
    for (let retry = 0; ; retry++) {
      this.#accept(state);
      const cp = this.#o.store.latestCheckpoint();
      if (cp === undefined || cp.size <= state.size) return false;
      try {
        state = await this.#push(state, cp, signal);
        this.#accept(state);
        return (this.#o.store.latestCheckpoint()?.size ?? 0) > state.size;
      } catch (e) {
        const r = refusalOf(e);
        const moved = r !== undefined && r.status === 409 && (r.code === 'UPLOAD_GAP' || r.code === 'CHECKPOINT_STALE');
        if (!moved || retry >= MAX_IMMEDIATE_RETRIES || this.#stopped) throw e;
        this.#o.logger?.info({ code: r.code }, `gateway: sync: the ledger's cursor moved (${r.code}); reading its state again`);
        state = r.state ?? (await this.#http.state(signal));
      }
    }
  }

  /**
   * Checks the ledger's state against the log and, when it holds, takes its accepted size as
   * acknowledged. Throws SYNC_ANSWER, SYNC_DIVERGED, SYNC_PRUNED, SYNC_WITNESS.
   */
  #accept(state: SyncState): void {
    const store = this.#o.store;
    if (state.origin !== store.origin) throw new GatewayError('SYNC_ANSWER', `gateway: sync: the ledger answered for ${JSON.stringify(state.origin.slice(0, 80))}, expected ${store.origin}`);
    if (state.staged > store.size) {
      throw new GatewayError('SYNC_DIVERGED', `gateway: sync: the ledger holds ${state.staged} entries of ${store.origin} but the log has ${store.size}: this data directory is not the log the ledger knows (restored from an old backup?)`);
    }
    if (state.staged < store.firstIndex && state.size < (store.latestCheckpoint()?.size ?? 0)) {
      throw new GatewayError('SYNC_PRUNED', `gateway: sync: the ledger holds ${state.staged} entries but this gateway pruned those below ${store.firstIndex} after the ledger had acknowledged them: the ledger lost data`);
    }
    if (state.size > 0) {
      let root: Uint8Array;
      try {
        root = store.root(state.size);
      } catch (e) {
        if (isGatewayError(e, 'STORE_RANGE')) throw new GatewayError('SYNC_PRUNED', `gateway: sync: cannot check the ledger's root at ${state.size}: ${e.message}`, { cause: e });
        throw e;
      }
      if (Buffer.compare(Buffer.from(root), Buffer.from(state.rootHash)) !== 0) {
        throw new GatewayError('SYNC_DIVERGED', `gateway: sync: the ledger's root of ${store.origin} at size ${state.size} is not this log's: the ledger holds another history of this gateway`);
      }
      if (state.checkpoint !== null) this.#checkCosigned(state.checkpoint, state.size, 'state');
    }
    this.#state = state;
    if (state.size > store.syncedSize) store.markSynced(state.size);
  }

  /** Opens a checkpoint the ledger returned: this gateway's signature, the size expected, the witness when configured. */
  #checkCosigned(note: string, size: number, where: string): void {
    try {
      const w = this.#o.witness;
      const cp = openCheckpoint(note, { origin: this.#o.store.origin, verifiers: [this.#verifier], ...(w === undefined ? {} : { witnesses: [w], requiredWitnesses: 1 }) });
      if (cp.size !== size) throw new Error(`size ${cp.size}, expected ${size}`);
    } catch (e) {
      const code = isProtocolError(e, 'CHECKPOINT_WITNESSES') ? 'SYNC_WITNESS' : 'SYNC_ANSWER';
      throw new GatewayError(code, `gateway: sync: the ledger's ${where} checkpoint: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Uploads [staged, cp.size) and the checkpoint. Returns the ledger's state after the last batch. */
  async #push(state: SyncState, cp: StoredCheckpoint, signal: AbortSignal): Promise<SyncState> {
    const store = this.#o.store;
    const from = Math.min(state.staged, cp.size);
    const gen = uploadBatches(store, this.#o.chains, { from, to: cp.size, checkpoint: cp, proofFrom: state.size, maxEntries: this.#maxEntries, maxBytes: this.#maxBytes });
    // Up to maxInFlightBatches uploads on the wire at once (consecutive ranges; the ledger takes
    // them in order of their first index and verifies the next while it stores the previous),
    // each read from disk just before it is sent; answers are taken in order.
    const wire: { readonly b: Batch; readonly answer: Promise<UploadResult> }[] = [];
    let exhausted = false;
    const fill = async (): Promise<void> => {
      while (!exhausted && wire.length < this.#inFlight && !signal.aborted) {
        const r = await gen.next();
        if (r.done === true) {
          exhausted = true;
          return;
        }
        this.#counts.missingChains += r.value.missingChains;
        const answer = this.#http.upload(r.value.body, signal);
        answer.catch(() => undefined); // taken in order below; one abandoned after a failure is not "unhandled"
        wire.push({ b: r.value, answer });
      }
    };
    let last = state;
    try {
      await fill();
      for (;;) {
        const next = wire.shift();
        if (next === undefined) break;
        const { b } = next;
        const result = await next.answer;
        await fill();
        this.#counts.uploads++;
        this.#counts.entriesStored += result.stored;
        this.#counts.entriesDuplicate += result.duplicates;
        this.#counts.entriesRejected += result.rejected;
        if (result.rejected > 0) this.#o.logger?.warn({ from: b.from, rejected: result.rejected, rejects: result.rejects.slice(0, 5) }, `gateway: sync: the ledger stored ${result.rejected} leaves of [${b.from}, ${b.from + b.count}) as unverified frames`);
        last = result.state;
        if (last.origin !== store.origin) throw new GatewayError('SYNC_ANSWER', 'gateway: sync: the upload result names another log');
        if (last.staged < b.from + b.count) throw new GatewayError('SYNC_ANSWER', `gateway: sync: the ledger holds ${last.staged} entries after an upload of [${b.from}, ${b.from + b.count})`);
        this.#state = last;
        if (b.final) {
          if (last.size < cp.size) throw new GatewayError('SYNC_ANSWER', `gateway: sync: the ledger answered the checkpoint of size ${cp.size} without accepting it (accepted size ${last.size})`);
          const note = result.cosigned ?? last.checkpoint;
          const size = result.cosigned === null ? last.size : cp.size;
          if (note !== null) await this.#keep(note, size);
          this.#counts.checkpointsAccepted += result.cosigned === null ? 0 : 1;
        }
      }
    } finally {
      // After a failure the uploads still on the wire are let finish (the ledger keeps what it
      // verified; the next round starts from its state), so rounds never overlap.
      await Promise.allSettled(wire.map((w) => w.answer));
      await gen.return(undefined).catch(() => undefined);
    }
    return last;
  }

  /** Checks and keeps a cosigned checkpoint newer than the kept one. A write failure is logged, not fatal. */
  async #keep(note: string, size: number): Promise<void> {
    this.#checkCosigned(note, size, 'cosigned');
    if (this.#cosigned !== undefined && this.#cosigned.size >= size) return;
    try {
      await writeCosigned(this.#o.dataDir, { size, note });
      this.#cosigned = { size, note };
    } catch (e) {
      this.#o.logger?.error({ err: e }, 'gateway: sync: cannot keep the cosigned checkpoint; `gateway prove` uses the gateway-signed one meanwhile');
    }
  }
}
