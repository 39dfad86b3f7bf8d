/**
 * Test support for the ingest integration tests (test/gateway-ingest-*.test.ts): a `Provisioner`
 * that sits between a transport and the ingest pipeline's ChannelEvents and provisions simulated
 * packs over their real channel (keygen → proof of possession → certificate from a test factory →
 * setchain → reboot, docs/protocol.md §4.5–4.7), intercepting only the responses to its own requests;
 * it can also hold back a channel's `open` so the pipeline sees frames without a session. Plus
 * readers for what the log holds and what the fleet produced (ground truth), for loss and duplicate
 * checks.
 */
import { readFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import {
  decodeFrame,
  decodeLeaf,
  importPublicKey,
  parseResult,
  parseSign1,
  popMessage,
  requestMessage,
  sha256,
  toHex,
  verifySignature,
  type Message,
  type OpResult,
  type RequestCall,
  type SignatureAlg,
} from '../protocol/index.js';
import type { TestFactory } from '../gateway/ingest/ingest-testkit.js';
import { type ChannelEvents, type DeviceChannel, LogStore, type RejectCode } from '../gateway/index.js';

export async function until<T>(find: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await find();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Request ids the provisioner uses: far above the pipeline's hello ids, so responses never mix. */
const FIRST_ID = 0x7000_0000;

export class Provisioner implements ChannelEvents {
  readonly channels = new Map<string, DeviceChannel>();
  private readonly responses = new Map<number, Message & { type: 'response' }>();
  private readonly held = new Set<string>();
  private nextId = FIRST_ID;

  constructor(private readonly next: ChannelEvents) {}

  /** Until `release(id)`, the pipeline is not told when `id` opens (so it has no session for it). */
  hold(id: string): void {
    this.held.add(id);
  }

  /** Tells the pipeline about the held channel now: it sends `Q hello` and the session starts. */
  release(id: string): void {
    this.held.delete(id);
    const ch = this.channels.get(id);
    if (ch?.isOpen === true) this.next.open(ch);
  }

  open(ch: DeviceChannel): void {
    this.channels.set(ch.id, ch);
    if (!this.held.has(ch.id)) this.next.open(ch);
  }

  message(ch: DeviceChannel, msg: Message): void {
    if (msg.type === 'response' && msg.id >= FIRST_ID) {
      this.responses.set(msg.id, msg);
      return;
    }
    this.next.message(ch, msg);
  }

  reject(ch: DeviceChannel, code: RejectCode, detail: string, raw?: string): void {
    this.next.reject(ch, code, detail, raw);
  }

  close(ch: DeviceChannel, reason: string): void {
    if (this.channels.get(ch.id) === ch) this.channels.delete(ch.id);
    this.next.close(ch, reason);
  }

  async call(id: string, call: RequestCall): Promise<OpResult> {
    const ch = await until(() => this.channels.get(id), `an open channel on ${id}`);
    const reqId = this.nextId++;
    await ch.send(requestMessage(reqId, call));
    const res = await until(() => this.responses.get(reqId), `the ${call.op} response from ${id}`);
    return parseResult(call.op, res);
  }

  /**
   * Provisions the pack on channel `id` as `serial` under `factory` (a fresh device key, proof of
   * possession checked), then reboots it so it greets the gateway with its new chain. Returns the
   * certificate serial (for revocation tests).
   */
  async provision(id: string, serial: string, factory: TestFactory, alg: SignatureAlg = 'Ed25519', certSerialHex?: string): Promise<string> {
    const key = await this.call(id, { op: 'keygen', alg: alg === 'Ed25519' ? -8 : -7, force: true });
    if (key.op !== 'keygen') throw new Error('expected a keygen result');
    const challenge = webcrypto.getRandomValues(new Uint8Array(32));
    const pop = await this.call(id, { op: 'prove', challenge });
    if (pop.op !== 'prove' || !verifySignature(importPublicKey(alg, key.publicKey), popMessage(challenge, key.publicKey), pop.signature)) {
      throw new Error(`proof of possession failed for ${id}`);
    }
    const issued = await factory.issue(serial, key.publicKey, alg, certSerialHex);
    await this.call(id, { op: 'setchain', chain: issued.chain });
    await this.call(id, { op: 'reboot' });
    return issued.certSerialHex;
  }
}

export interface TruthLine {
  serial: string;
  counter: number;
  sha256: string;
  producedAt: number;
}

/** Every frame the fleet produced (hw-sim `ground-truth.jsonl`). */
export function groundTruth(path: string): TruthLine[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as TruthLine);
}

export interface LoggedFrame {
  index: number;
  serial: string;
  counter: number;
  sha256: string;
}

/** Every entry of an open log, decoded. */
export async function logFrames(store: LogStore): Promise<LoggedFrame[]> {
  const out: LoggedFrame[] = [];
  for await (const e of store.entries(0, store.size)) {
    const leaf = decodeLeaf(e.data);
    const frame = decodeFrame(parseSign1(leaf.frame).payload);
    out.push({ index: e.index, serial: frame.serial, counter: frame.counter, sha256: toHex(sha256(leaf.frame)) });
  }
  return out;
}

/** Every entry of the log in `dir` (opened read-only: no lock, nothing written). */
export async function readLog(dir: string): Promise<LoggedFrame[]> {
  const store = await LogStore.open({ dir, readOnly: true });
  try {
    return await logFrames(store);
  } finally {
    await store.close();
  }
}

/** Keys "serial/counter" that occur more than once in `frames`. */
export function storedTwice(frames: readonly { serial: string; counter: number }[]): string[] {
  const seen = new Set<string>();
  const twice: string[] = [];
  for (const f of frames) {
    const k = `${f.serial}/${f.counter}`;
    if (seen.has(k)) twice.push(k);
    seen.add(k);
  }
  return twice;
}
