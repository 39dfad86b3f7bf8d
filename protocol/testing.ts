/**
 * Test-only helpers shared by protocol's tests (not exported from protocol/index.ts).
 * `codeOf` runs a function and names its outcome: "ok", or the ProtocolError code it threw.
 * Any other exception is rethrown so that a decoder leaking a TypeError or RangeError fails the test.
 */
import { ProtocolError, type ProtocolErrorCode } from './errors.js';

export function codeOf(f: () => unknown): ProtocolErrorCode | 'ok' {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (e instanceof ProtocolError) return e.code;
    throw e;
  }
}

export async function codeOfAsync(f: () => Promise<unknown>): Promise<ProtocolErrorCode | 'ok'> {
  try {
    await f();
    return 'ok';
  } catch (e) {
    if (e instanceof ProtocolError) return e.code;
    throw e;
  }
}
