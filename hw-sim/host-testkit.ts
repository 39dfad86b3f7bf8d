/**
 * Test-only host side for hw-sim integration tests (not exported from hw-sim/index.ts): what the
 * station and the gateway do with a pack, in miniature — send requests, collect messages, provision
 * the pack under a throw-away factory CA, and verify its frames with protocol. The transport is a
 * function that puts one message on the wire (a real pty via serialport, or node-ble writes).
 */
import { webcrypto } from 'node:crypto';
import {
  createCrl,
  createDeviceCert,
  createIntermediateCa,
  createRootCa,
  importPublicKey,
  parseResult,
  popMessage,
  requestMessage,
  TrustStore,
  verifySignature,
  type Message,
  type RequestCall,
  type VerifiedDevice,
} from '../protocol/index.js';

export class TestHost {
  readonly messages: Message[] = [];
  private nextId = 1;

  constructor(private readonly put: (msg: Message) => void | Promise<void>) {}

  /** Feed every message the device sent here. */
  receive(msg: Message): void {
    this.messages.push(msg);
  }

  send(msg: Message): Promise<void> {
    return Promise.resolve(this.put(msg));
  }

  async until<T>(find: () => T | undefined, timeoutMs = 20_000): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = find();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error('host: timed out waiting for the device');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  frames(): (Message & { type: 'frame' })[] {
    return this.messages.flatMap((m) => (m.type === 'frame' ? [m] : []));
  }

  async call(call: RequestCall) {
    const id = this.nextId++;
    await this.send(requestMessage(id, call));
    const res = await this.until(() => this.messages.find((m) => m.type === 'response' && m.id === id));
    if (res.type !== 'response') throw new Error('unreachable');
    return parseResult(call.op, res);
  }

  /**
   * Provisions the pack as `serial`: keygen (ES256 or Ed25519), proof of possession checked, a device
   * certificate under a fresh root → line CA, setchain. Returns the trust store and the verified device.
   */
  async provision(serial: string, alg: -7 | -8 = -7): Promise<{ trust: TrustStore; device: VerifiedDevice }> {
    const key = await this.call({ op: 'keygen', alg });
    if (key.op !== 'keygen') throw new Error('expected a keygen result');
    const challenge = webcrypto.getRandomValues(new Uint8Array(32));
    const pop = await this.call({ op: 'prove', challenge });
    const sigAlg = alg === -7 ? 'ES256' : 'Ed25519';
    if (pop.op !== 'prove' || !verifySignature(importPublicKey(sigAlg, key.publicKey), popMessage(challenge, key.publicKey), pop.signature)) {
      throw new Error('proof of possession failed');
    }
    const validity = { notBefore: new Date(Date.now() - 86_400_000), notAfter: new Date(Date.now() + 365 * 86_400_000) };
    const rootKeys = await webcrypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    const lineKeys = await webcrypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    if (!('privateKey' in rootKeys) || !('privateKey' in lineKeys)) throw new Error('expected key pairs');
    const root = await createRootCa({ name: 'Test Factory Root', keys: rootKeys, alg: 'Ed25519', ...validity });
    const rootIssuer = { cert: root, privateKey: rootKeys.privateKey };
    const line = await createIntermediateCa({ name: 'Test Line', keys: lineKeys, alg: 'Ed25519', ...validity, issuer: rootIssuer });
    const lineIssuer = { cert: line, privateKey: lineKeys.privateKey };
    const cert = await createDeviceCert({ packSerial: serial, devicePublicKey: key.publicKey, deviceAlg: sigAlg, issuer: lineIssuer, ...validity });
    await this.call({ op: 'setchain', chain: [cert, line] });
    const crlDates = { crlNumber: 1, thisUpdate: validity.notBefore, nextUpdate: validity.notAfter, revoked: [] };
    const crls = [await createCrl({ issuer: lineIssuer, ...crlDates }), await createCrl({ issuer: rootIssuer, ...crlDates })];
    const trust = await TrustStore.create({ roots: [root], intermediates: [line], crls });
    return { trust, device: trust.verifyChain([cert, line], new Date()) };
  }
}
