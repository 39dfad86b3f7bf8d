/**
 * Retry delays of the sync client: exponential backoff with full jitter (the AWS Architecture Blog
 * "Exponential Backoff And Jitter" scheme): after the n-th consecutive failure wait a uniformly
 * random time in [0, min(maxMs, baseMs · 2^(n−1))). Full jitter spreads a fleet of gateways that
 * lost the same ledger at the same moment, so they do not all come back in lock-step when it
 * returns. `random` is passed in (tests give a fixed sequence); the cap keeps a gateway that was cut
 * off for days retrying at least every `maxMs`.
 */
import { GatewayError } from '../errors.js';

export interface BackoffPolicy {
  /** Upper bound of the first retry's delay, ms. */
  readonly baseMs: number;
  /** Upper bound of any delay, ms. */
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1000, maxMs: 300_000 };

/** Throws SYNC_CONFIG unless 1 ≤ baseMs ≤ maxMs ≤ 1 day. */
export function checkBackoff(p: BackoffPolicy): void {
  if (!Number.isSafeInteger(p.baseMs) || !Number.isSafeInteger(p.maxMs) || p.baseMs < 1 || p.maxMs < p.baseMs || p.maxMs > 86_400_000) {
    throw new GatewayError('SYNC_CONFIG', `gateway: sync: backoff ${p.baseMs}..${p.maxMs} ms: expected integers with 1 ≤ baseMs ≤ maxMs ≤ 86400000`);
  }
}

/** The ceiling of the delay after `failures` consecutive failures (≥ 1), ms. */
export function backoffCeiling(p: BackoffPolicy, failures: number): number {
  const exp = Math.min(Math.max(failures, 1) - 1, 40); // 2^40 ms is far beyond any cap; avoids Infinity
  return Math.min(p.maxMs, p.baseMs * 2 ** exp);
}

/** A full-jitter delay in [0, ceiling), whole ms. `random` returns [0, 1). */
export function backoffDelay(p: BackoffPolicy, failures: number, random: () => number): number {
  const r = random();
  const u = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1 - Number.EPSILON) : 0.5;
  return Math.floor(u * backoffCeiling(p, failures));
}
