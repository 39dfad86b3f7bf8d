/**
 * The firmware's answers to host requests (docs/protocol.md §4.5, §4.7): the provisioning
 * station's keygen → pubkey → prove → setchain → selftest sequence, the gateway's hello, and
 * reboot. Step 2 of request decoding happens here: an op not in the table is UNKNOWN_OP and bad
 * arguments are BAD_ARGS, both answered with the request id so the host never waits on a silent
 * device. The private key is used only to sign (proof of possession, frames) and never leaves
 * flash.ts: no response, error text or log line carries it.
 *
 * setchain checks the one thing a device can check without a trust store: that the leaf
 * certificate certifies *this* device's key (canonical SPKI bytes compared, docs/protocol.md §3), and
 * that its subject serialNumber fits the frame serial field — otherwise BAD_CHAIN. Chain validity
 * up to a root is the gateway's job (TrustStore), not the firmware's.
 */
import {
  bytesEqual,
  canonicalSpki,
  COSE_ALG,
  encodeMessage,
  errorResponse,
  FRAME_FIELD_BY_NAME,
  isRequestOp,
  okResponse,
  parseCertificate,
  parseRequest,
  popMessage,
  ProtocolError,
  publicKeyFromSecretPortable,
  RESPONSE_STATUS,
  signPortable,
  type DeviceKeyAlg,
  type HelloInfo,
  type RequestMessage,
  type ResponseMessage,
  type SignatureAlg,
} from '../protocol/index.js';
import type { DeviceFlash } from './flash.js';
import type { RingEntry } from './ring.js';

/** A source of random bytes (a seeded PRNG in simulations, node:crypto otherwise). */
export type RandomBytes = (n: number) => Uint8Array;

/** Status for selftest on a device that has a key but no certificate yet: it has no serial to sign. */
export const STATUS_NO_CHAIN = 'NO_CHAIN';

/** What request handling needs from the firmware. */
export interface CommandHost {
  readonly flash: DeviceFlash;
  readonly random: RandomBytes;
  hello(): HelloInfo;
  /** Produces, stores and queues one signed frame now; returns its COSE bytes. */
  produceNow(): Promise<Uint8Array>;
}

/** What the firmware does after the response is on its way. */
export type AfterResponse = 'none' | 'session' | 'rekeyed' | 'provisioned' | 'reboot';

export interface CommandOutcome {
  readonly response: ResponseMessage;
  readonly after: AfterResponse;
  /** Frames wiped by a forced keygen (reported by the firmware). */
  readonly wiped?: readonly RingEntry[];
}

const SERIAL_PATTERN = FRAME_FIELD_BY_NAME.get('serial')?.pattern ?? /^$/;
const ALG_OF: Record<DeviceKeyAlg, SignatureAlg> = { [-8]: 'Ed25519', [-7]: 'ES256' };

/** Error text for humans, cut to the 256-byte limit of docs/protocol.md §4.5. */
function text(s: string): string {
  let out = s.replace(/[^\x20-\x7e]/g, '?');
  if (out.length > 256) out = `${out.slice(0, 253)}...`;
  return out;
}

function fail(id: number, status: string, message: string): CommandOutcome {
  return { response: errorResponse(id, status, text(message)), after: 'none' };
}

/**
 * A fresh secret key from `random`: any 32 bytes for Ed25519 (RFC 8032 §5.1.5 hashes them); for
 * P-256 a scalar in [1, n−1], drawn again in the astronomically rare case it is not.
 */
export function generateSecretKey(alg: SignatureAlg, random: RandomBytes): Uint8Array {
  for (let i = 0; i < 16; i++) {
    const sk = random(32);
    if (sk.length !== 32) throw new Error(`random source returned ${sk.length} bytes, expected 32`);
    try {
      publicKeyFromSecretPortable(alg, sk);
      return sk;
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
    }
  }
  throw new Error(`random source gave 16 invalid ${alg} secret keys in a row`);
}

/** Answers one request. Never throws for bad input; throws only for firmware bugs and I/O errors. */
export async function handleRequest(host: CommandHost, msg: RequestMessage): Promise<CommandOutcome> {
  const { id } = msg;
  if (!isRequestOp(msg.op)) return fail(id, RESPONSE_STATUS.unknownOp, `unknown op "${msg.op}"`);
  let call;
  try {
    call = parseRequest(msg);
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    return fail(id, RESPONSE_STATUS.badArgs, e.message);
  }
  const flash = host.flash;
  const me = flash.identity;
  switch (call.op) {
    case 'hello':
      return { response: okResponse(id, { op: 'hello', hello: host.hello() }), after: 'session' };
    case 'keygen': {
      if (me.alg !== null && call.force !== true) return fail(id, RESPONSE_STATUS.exists, 'the device already has a key; send force: true to replace it');
      const alg = ALG_OF[call.alg];
      const wiped = await flash.setKey(alg, generateSecretKey(alg, host.random));
      const pub = flash.identity.publicKey;
      if (!pub) throw new Error('keygen: no public key after storing the secret');
      return { response: okResponse(id, { op: 'keygen', alg: call.alg, publicKey: pub }), after: 'rekeyed', wiped };
    }
    case 'pubkey':
      if (me.alg === null || !me.publicKey) return fail(id, RESPONSE_STATUS.noKey, 'no key: send keygen first');
      return { response: okResponse(id, { op: 'pubkey', alg: COSE_ALG[me.alg] as DeviceKeyAlg, publicKey: me.publicKey }), after: 'none' };
    case 'prove': {
      const sk = flash.secretKey();
      if (me.alg === null || !me.publicKey || !sk) return fail(id, RESPONSE_STATUS.noKey, 'no key: send keygen first');
      const signature = signPortable(me.alg, sk, popMessage(call.challenge, me.publicKey));
      return { response: okResponse(id, { op: 'prove', signature }), after: 'none' };
    }
    case 'setchain':
      return setChain(host, id, call.chain);
    case 'selftest':
      if (me.alg === null) return fail(id, RESPONSE_STATUS.noKey, 'no key: send keygen first');
      if (me.chain.length === 0) return fail(id, STATUS_NO_CHAIN, 'no certificate chain: send setchain first (frames carry its serial)');
      return { response: okResponse(id, { op: 'selftest', cose: await host.produceNow() }), after: 'none' };
    case 'reboot':
      return { response: okResponse(id, { op: 'reboot' }), after: 'reboot' };
  }
}

async function setChain(host: CommandHost, id: number, chain: Uint8Array[]): Promise<CommandOutcome> {
  const me = host.flash.identity;
  if (!me.publicKey) return fail(id, RESPONSE_STATUS.noKey, 'no key: send keygen first');
  const leafDer = chain[0];
  if (!leafDer) return fail(id, RESPONSE_STATUS.badChain, 'empty chain');
  let serial: string | undefined;
  try {
    const leaf = parseCertificate(leafDer);
    if (!bytesEqual(canonicalSpki(leaf.spki), canonicalSpki(me.publicKey))) {
      return fail(id, RESPONSE_STATUS.badChain, 'the first certificate does not carry this device\'s public key');
    }
    serial = leaf.serialNumbers[0] ?? leaf.commonNames[0];
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    return fail(id, RESPONSE_STATUS.badChain, `the first certificate is unreadable (${e.code})`);
  }
  if (serial === undefined || !SERIAL_PATTERN.test(serial)) {
    return fail(id, RESPONSE_STATUS.badChain, `the certificate's serialNumber does not fit a frame serial (${String(SERIAL_PATTERN)})`);
  }
  // The chain must fit in the hello (and the hello result) the device will send from now on.
  try {
    const hello = { ...host.hello(), serial, chain };
    encodeMessage({ type: 'hello', ...hello });
    okResponse(0xffffffff, { op: 'hello', hello });
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    return fail(id, RESPONSE_STATUS.badChain, `the chain does not fit in a hello (${e.code})`);
  }
  await host.flash.setChain(chain, serial);
  return { response: okResponse(id, { op: 'setchain' }), after: 'provisioned' };
}
