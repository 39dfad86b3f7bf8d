/**
 * Typed request operations and their results (docs/protocol.md §4, "Requests and responses").
 * The envelope decoder (messages.ts) accepts any well-formed op name with any argument map, so that a
 * device can answer an unknown op with status UNKNOWN_OP and bad arguments with BAD_ARGS, echoing the
 * request id. This file is the second step: `parseRequest` checks the arguments of the known ops and
 * `parseResult` checks a successful response's result map for the op the host asked for. Both throw
 * MSG_MALFORMED naming the field; `requestMessage` / `okResponse` build the maps they accept.
 */
import type { CborMap, CborValue } from './cbor.js';
import {
  checkAlg,
  checkChain,
  checkPublicKey,
  encodeMessage,
  helloFromMap,
  helloToMap,
  MESSAGE_LIMITS,
  type DeviceKeyAlg,
  type HelloInfo,
  type RequestMessage,
  type ResponseMessage,
} from './messages.js';
import { Fields, malformed } from './wire-schema.js';

export const REQUEST_OPS = ['hello', 'keygen', 'pubkey', 'prove', 'setchain', 'selftest', 'reboot'] as const;
export type RequestOp = (typeof REQUEST_OPS)[number];

/** A request with checked, typed arguments. */
export type RequestCall =
  | { op: 'hello' }
  /** Generate the key pair on the device; without force, a device that has a key answers EXISTS. */
  | { op: 'keygen'; alg: DeviceKeyAlg; force?: boolean }
  | { op: 'pubkey' }
  /** Proof of possession: sign messages.ts popMessage(challenge, publicKey). */
  | { op: 'prove'; challenge: Uint8Array }
  /** Store the certificate chain (device certificate first) issued by the station. */
  | { op: 'setchain'; chain: Uint8Array[] }
  /** Sign and return a fresh frame. */
  | { op: 'selftest' }
  | { op: 'reboot' };

/** The result of a successful (status "ok") response, by op. */
export type OpResult =
  | { op: 'hello'; hello: HelloInfo }
  | { op: 'keygen' | 'pubkey'; alg: DeviceKeyAlg; publicKey: Uint8Array }
  | { op: 'prove'; signature: Uint8Array }
  | { op: 'selftest'; cose: Uint8Array }
  | { op: 'setchain' | 'reboot' };

/** Statuses with a defined meaning; devices may send other upper-case codes (CODE_PATTERN). */
export const RESPONSE_STATUS = Object.freeze({
  ok: 'ok',
  /** keygen without force while a key exists. */
  exists: 'EXISTS',
  /** pubkey, prove, selftest or setchain before keygen. */
  noKey: 'NO_KEY',
  /** setchain with a chain whose first certificate does not hold the device's public key. */
  badChain: 'BAD_CHAIN',
  /** parseRequest threw MSG_MALFORMED for a known op. */
  badArgs: 'BAD_ARGS',
  /** The op is not one of REQUEST_OPS. */
  unknownOp: 'UNKNOWN_OP',
} as const);

export function isRequestOp(op: string): op is RequestOp {
  return (REQUEST_OPS as readonly string[]).includes(op);
}

const NO_FIELDS = {};

/** Builds (and validates, via encodeMessage) a request. Throws as encodeMessage. */
export function requestMessage(id: number, call: RequestCall): RequestMessage {
  const args = new Map<number, CborValue>();
  if (call.op === 'keygen') {
    args.set(1, call.alg);
    if (call.force !== undefined) args.set(2, call.force);
  } else if (call.op === 'prove') {
    args.set(1, call.challenge);
  } else if (call.op === 'setchain') {
    args.set(1, call.chain);
  }
  const msg: RequestMessage = { type: 'request', id, op: call.op, args };
  encodeMessage(msg);
  return msg;
}

/**
 * Checks a request's arguments against its op. Throws MSG_MALFORMED for an unknown op (the device
 * answers UNKNOWN_OP; test isRequestOp first to tell) or bad arguments (the device answers BAD_ARGS).
 */
export function parseRequest(msg: RequestMessage): RequestCall {
  const op = msg.op;
  const what = `${op} args`;
  switch (op) {
    case 'hello':
    case 'pubkey':
    case 'selftest':
    case 'reboot':
      Fields.of(msg.args, what, NO_FIELDS);
      return { op };
    case 'keygen': {
      const f = Fields.of(msg.args, what, { 1: 'alg', 2: 'force' });
      const alg = checkAlg(f.get(1), f.label(1));
      if (alg === null) return malformed(f.label(1), 'expected -8 (EdDSA) or -7 (ES256)');
      return f.has(2) ? { op, alg, force: f.bool(2) } : { op, alg };
    }
    case 'prove': {
      const f = Fields.of(msg.args, what, { 1: 'challenge' });
      return { op, challenge: f.bytes(1, 32, 32) };
    }
    case 'setchain': {
      const f = Fields.of(msg.args, what, { 1: 'chain' });
      return { op, chain: checkChain(f.get(1), f.label(1), 1) };
    }
    default:
      return malformed('request field 2 (op)', `unknown op ${JSON.stringify(op)} (expected one of ${REQUEST_OPS.join(', ')})`);
  }
}

/** Builds (and validates) a successful response. Throws as encodeMessage. */
export function okResponse(id: number, result: OpResult): ResponseMessage {
  const map = new Map<number, CborValue>();
  switch (result.op) {
    case 'hello':
      map.set(1, helloToMap(result.hello));
      break;
    case 'keygen':
    case 'pubkey':
      map.set(1, result.alg).set(2, result.publicKey);
      break;
    case 'prove':
      map.set(1, result.signature);
      break;
    case 'selftest':
      map.set(1, result.cose);
      break;
    case 'setchain':
    case 'reboot':
      break;
  }
  const msg: ResponseMessage = { type: 'response', id, status: 'ok', result: map };
  encodeMessage(msg);
  return msg;
}

/** Builds (and validates) a failed response: `status` an upper-case code, `text` ≤ 256 bytes. */
export function errorResponse(id: number, status: string, text: string): ResponseMessage {
  if (status === 'ok') malformed('response field 2 (status)', 'an error response needs an error code, not "ok"');
  const msg: ResponseMessage = { type: 'response', id, status, result: text };
  encodeMessage(msg);
  return msg;
}

/**
 * Checks a successful response's result for the op the host sent (a response does not repeat the
 * op: the host knows it from the request id). Throws MSG_MALFORMED when status is not "ok" or the
 * result does not fit the op's schema.
 */
export function parseResult(op: RequestOp, msg: ResponseMessage): OpResult {
  if (msg.status !== 'ok' || typeof msg.result === 'string') {
    return malformed('response field 2 (status)', `expected "ok", got ${JSON.stringify(msg.status)}`);
  }
  const result: CborMap = msg.result;
  const what = `${op} result`;
  switch (op) {
    case 'hello': {
      const f = Fields.of(result, what, { 1: 'hello body' });
      return { op, hello: helloFromMap(f.get(1), f.label(1)) };
    }
    case 'keygen':
    case 'pubkey': {
      const f = Fields.of(result, what, { 1: 'alg', 2: 'public key' });
      const alg = checkAlg(f.get(1), f.label(1));
      if (alg === null) return malformed(f.label(1), 'expected -8 (EdDSA) or -7 (ES256)');
      return { op, alg, publicKey: checkPublicKey(f.get(2), alg, f.label(2)) };
    }
    case 'prove': {
      const f = Fields.of(result, what, { 1: 'signature' });
      return { op, signature: f.bytes(1, 64, 64) };
    }
    case 'selftest': {
      const f = Fields.of(result, what, { 1: 'COSE frame' });
      return { op, cose: f.bytes(1, 1, MESSAGE_LIMITS.maxFrame) };
    }
    case 'setchain':
    case 'reboot':
      Fields.of(result, what, NO_FIELDS);
      return { op };
  }
}
