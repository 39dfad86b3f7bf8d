/**
 * Test support for gateway tests that drive simulated packs (test/ because it works with hw-sim
 * fleets): a throw-away factory CA (`TestFactory`), and `GatewayTestHost`, a pipeline in miniature
 * behind the transport ChannelEvents — on every open it sends `Q hello` as the pipeline does, it
 * provisions packs over their channel (keygen → proof of possession → certificate → setchain, the
 * station's sequence of docs/protocol.md §4.5–4.7), verifies every frame with protocol's
 * verifySign1 against the certified key, and acknowledges verified frames (DESIGN decision 4,
 * without the durable log). It records opens, closes, rejects and accepted counters per channel id,
 * so tests can compare what arrived with the fleet's ground truth.
 */
import { readFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import {
  ackMessages,
  createCrl,
  createDeviceCert,
  createIntermediateCa,
  createRootCa,
  decodeFrame,
  importPublicKey,
  isProtocolError,
  parseResult,
  popMessage,
  requestMessage,
  sha256,
  toHex,
  TrustStore,
  verifySign1,
  verifySignature,
  type Issuer,
  type Message,
  type OpResult,
  type RequestCall,
  type VerifiedDevice,
} from '../protocol/index.js';
import type { ChannelEvents, DeviceChannel, RejectCode } from '../gateway/index.js';

/** Polls `find` every 10 ms until it returns something other than undefined/false. */
export async function until<T>(find: () => T | undefined | false, what: string, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = find();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A root CA and a line CA (Ed25519) that certify test packs, and the trust store over them. */
export class TestFactory {
  private constructor(
    readonly trust: TrustStore,
    private readonly line: Issuer,
    private readonly lineCert: Uint8Array,
    private readonly validity: { notBefore: Date; notAfter: Date },
  ) {}

  static async create(): Promise<TestFactory> {
    const validity = { notBefore: new Date(Date.now() - 86_400_000), notAfter: new Date(Date.now() + 365 * 86_400_000) };
    const rootKeys = await webcrypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    const lineKeys = await webcrypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    if (!('privateKey' in rootKeys) || !('privateKey' in lineKeys)) throw new Error('expected key pairs');
    const root = await createRootCa({ name: 'Test Factory Root', keys: rootKeys, alg: 'Ed25519', ...validity });
    const rootIssuer = { cert: root, privateKey: rootKeys.privateKey };
    const line = await createIntermediateCa({ name: 'Test Line', keys: lineKeys, alg: 'Ed25519', ...validity, issuer: rootIssuer });
    const lineIssuer = { cert: line, privateKey: lineKeys.privateKey };
    const crlDates = { crlNumber: 1, thisUpdate: validity.notBefore, nextUpdate: validity.notAfter, revoked: [] };
    const crls = [await createCrl({ issuer: lineIssuer, ...crlDates }), await createCrl({ issuer: rootIssuer, ...crlDates })];
    const trust = await TrustStore.create({ roots: [root], intermediates: [line], crls });
    return new TestFactory(trust, lineIssuer, line, validity);
  }

  /** The chain [device certificate, line CA] for a device key. */
  async issue(packSerial: string, publicKey: Uint8Array, alg: 'Ed25519' | 'ES256'): Promise<Uint8Array[]> {
    const cert = await createDeviceCert({ packSerial, devicePublicKey: publicKey, deviceAlg: alg, issuer: this.line, ...this.validity });
    return [cert, this.lineCert];
  }
}

/** Everything the host saw of one device endpoint (channel id), across its connections. */
export class PackView {
  channel: DeviceChannel | undefined;
  readonly opens: DeviceChannel[] = [];
  readonly closes: string[] = [];
  /** Every message except frames, in arrival order. */
  readonly messages: Message[] = [];
  readonly rejects: RejectCode[] = [];
  /** Frames that verified: counter → SHA-256 hex of the COSE bytes. */
  readonly accepted = new Map<number, string>();
  readonly duplicates: number[] = [];
  /** Verification failures by code (COSE_SIGNATURE, ...). */
  readonly verifyErrors: string[] = [];
  framesReceived = 0;
  device: VerifiedDevice | undefined;

  constructor(readonly id: string) {}
}

export interface TruthLine {
  serial: string;
  counter: number;
  sha256: string;
  producedAt: number;
}

/** The fleet's ground truth (hw-sim fleet `ground-truth.jsonl`) for one pack serial. */
export function groundTruth(path: string, serial: string): TruthLine[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as TruthLine)
    .filter((t) => t.serial === serial);
}

/** Waits until every frame the ground truth lists now has been accepted with its bytes. */
export async function everyFrameDelivered(view: PackView, truthPath: string, serial: string, timeoutMs = 20_000): Promise<number> {
  const want = groundTruth(truthPath, serial);
  await until(() => want.every((t) => view.accepted.get(t.counter) === t.sha256), `every ground-truth frame of ${serial} at ${view.id} (${want.filter((t) => view.accepted.get(t.counter) !== t.sha256).length} missing)`, timeoutMs);
  return want.length;
}

/** A gateway pipeline in miniature, as ChannelEvents. */
export class GatewayTestHost implements ChannelEvents {
  readonly packs = new Map<string, PackView>();
  /** Acknowledge verified frames (default true). */
  acking = true;
  /** Send `Q hello` on every open, as the pipeline does (default true). */
  helloOnOpen = true;
  private nextId = 1;

  constructor(readonly factory: TestFactory) {}

  pack(id: string): PackView {
    let v = this.packs.get(id);
    if (!v) {
      v = new PackView(id);
      this.packs.set(id, v);
    }
    return v;
  }

  open(ch: DeviceChannel): void {
    const v = this.pack(ch.id);
    v.channel = ch;
    v.opens.push(ch);
    if (this.helloOnOpen) void this.send(ch, requestMessage(this.nextId++, { op: 'hello' }));
  }

  message(ch: DeviceChannel, msg: Message): void {
    const v = this.pack(ch.id);
    if (msg.type === 'frame') this.frame(v, ch, msg.cose);
    else v.messages.push(msg);
  }

  reject(ch: DeviceChannel, code: RejectCode): void {
    this.pack(ch.id).rejects.push(code);
  }

  close(ch: DeviceChannel, reason: string): void {
    const v = this.pack(ch.id);
    v.closes.push(reason);
    if (v.channel === ch) v.channel = undefined;
  }

  /** Sends a request on the device's current channel and waits for its response. */
  async call(id: string, call: RequestCall, timeoutMs = 20_000): Promise<OpResult> {
    const v = this.pack(id);
    const ch = await until(() => v.channel, `an open channel on ${id}`, timeoutMs);
    const reqId = this.nextId++;
    await ch.send(requestMessage(reqId, call));
    const res = await until(() => v.messages.find((m) => m.type === 'response' && m.id === reqId), `the ${call.op} response from ${id}`, timeoutMs);
    if (res.type !== 'response') throw new Error('unreachable');
    return parseResult(call.op, res);
  }

  /** Provisions the pack at `id` as `serial` with a fresh device key; frames then verify against it. */
  async provision(id: string, serial: string, alg: -7 | -8 = -8): Promise<VerifiedDevice> {
    const key = await this.call(id, { op: 'keygen', alg, force: true });
    if (key.op !== 'keygen') throw new Error('expected a keygen result');
    const challenge = webcrypto.getRandomValues(new Uint8Array(32));
    const pop = await this.call(id, { op: 'prove', challenge });
    const sigAlg = alg === -7 ? 'ES256' : 'Ed25519';
    if (pop.op !== 'prove' || !verifySignature(importPublicKey(sigAlg, key.publicKey), popMessage(challenge, key.publicKey), pop.signature)) {
      throw new Error(`proof of possession failed for ${id}`);
    }
    const chain = await this.factory.issue(serial, key.publicKey, sigAlg);
    await this.call(id, { op: 'setchain', chain });
    const device = this.factory.trust.verifyChain(chain, new Date());
    this.pack(id).device = device;
    return device;
  }

  /** Acknowledges every accepted frame of `id` (after acking was paused). */
  async ackAll(id: string): Promise<void> {
    const v = this.pack(id);
    const ch = v.channel;
    if (ch) for (const ack of ackMessages([...v.accepted.keys()])) await ch.send(ack);
  }

  private send(ch: DeviceChannel, msg: Message): Promise<void> {
    // A channel that closes under a send is normal here: the pack resends after the next open.
    return ch.send(msg).catch(() => undefined);
  }

  private frame(v: PackView, ch: DeviceChannel, cose: Uint8Array): void {
    v.framesReceived += 1;
    const key = v.device;
    if (!key) return;
    let counter: number;
    try {
      counter = decodeFrame(verifySign1(cose, { publicKey: key.publicKey, kid: key.kid }).payload).counter;
    } catch (e) {
      if (!isProtocolError(e)) throw e;
      v.verifyErrors.push(e.code);
      return;
    }
    const sha = toHex(sha256(cose));
    const seen = v.accepted.get(counter);
    if (seen === undefined) v.accepted.set(counter, sha);
    else if (seen === sha) v.duplicates.push(counter);
    else return; // a conflicting counter: never acknowledged
    if (this.acking) for (const ack of ackMessages([counter])) void this.send(ch, ack);
  }
}

/** Records a transport's events without any pipeline behaviour (transport tests). */
export class Recorder implements ChannelEvents {
  readonly opens: DeviceChannel[] = [];
  readonly closes: string[] = [];
  readonly messages: Message[] = [];
  readonly rejects: { code: RejectCode; detail: string }[] = [];
  open(ch: DeviceChannel): void {
    this.opens.push(ch);
  }
  message(_ch: DeviceChannel, msg: Message): void {
    this.messages.push(msg);
  }
  reject(_ch: DeviceChannel, code: RejectCode, detail: string): void {
    this.rejects.push({ code, detail });
  }
  close(_ch: DeviceChannel, reason: string): void {
    this.closes.push(reason);
  }
}
