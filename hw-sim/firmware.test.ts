/**
 * The firmware's protocol side over an in-memory link that still runs the real line codec:
 * provisioning (keygen → pubkey → prove → setchain) with a real CA chain, frames that a gateway's
 * TrustStore and verifySign1 accept, acks, resends after reconnects, ring overflow, bad input, and
 * restarts. Device time is driven by tick(); nothing sleeps.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  decodeFrame,
  encodeLine,
  importPublicKey,
  parseResult,
  parseSign1,
  popMessage,
  sha256,
  toHex,
  verifySign1,
  verifySignature,
  type Message,
  type RequestCall,
} from '../protocol/index.js';
import { cleanupRigs, makeFactory, provision, rig, T0, until, type Rig } from './firmware-testkit.js';

afterEach(cleanupRigs);

describe('firmware provisioning', () => {
  for (const alg of ['Ed25519', 'ES256'] as const) {
    it(`${alg}: keygen, pubkey, prove and setchain give a device whose frames a gateway verifies`, async () => {
      const factory = await makeFactory(alg);
      const r = await rig();
      r.link.connect();
      await until(() => r.link.host.received.length > 0, 'hello');
      const hello0 = r.link.host.received[0];
      expect(hello0).toMatchObject({ type: 'hello', serial: '', alg: null, publicKey: null, chain: [], nextCounter: 0, unacked: 0 });
      await r.fw.tick(T0 + 10_000);
      expect(r.fw.stats.framesProduced).toBe(0); // unprovisioned: no frames

      const keygen = parseResult('keygen', await r.ask({ op: 'keygen', alg: alg === 'Ed25519' ? -8 : -7 }));
      const pubkey = parseResult('pubkey', await r.ask({ op: 'pubkey' }));
      if (keygen.op !== 'keygen' || pubkey.op !== 'pubkey') throw new Error('unexpected result');
      expect(pubkey.publicKey).toEqual(keygen.publicKey);
      expect(keygen.publicKey.length).toBe(alg === 'Ed25519' ? 32 : 65);

      const challenge = new Uint8Array(randomBytes(32));
      const prove = parseResult('prove', await r.ask({ op: 'prove', challenge }));
      if (prove.op !== 'prove') throw new Error('prove');
      const key = importPublicKey(alg, keygen.publicKey);
      expect(verifySignature(key, popMessage(challenge, keygen.publicKey), prove.signature)).toBe(true);
      expect(verifySignature(key, popMessage(new Uint8Array(32), keygen.publicKey), prove.signature)).toBe(false);

      const chain = await factory.issue(keygen.publicKey, alg, 'PACK-0001');
      expect((await r.ask({ op: 'setchain', chain })).status).toBe('ok');
      const hello = parseResult('hello', await r.ask({ op: 'hello' }));
      if (hello.op !== 'hello') throw new Error('hello');
      expect(hello.hello.serial).toBe('PACK-0001');
      expect(hello.hello.chain).toEqual(chain);

      await r.fw.tick(T0 + 1_000);
      await r.fw.tick(T0 + 3_500);
      await until(() => r.counters().length === 3, 'three frames');
      const device = factory.trust.verifyChain(hello.hello.chain, new Date(T0));
      const frames = r.link.host.received.filter((m): m is Extract<Message, { type: 'frame' }> => m.type === 'frame');
      frames.forEach((m, i) => {
        const v = verifySign1(m.cose, { publicKey: device.publicKey, kid: device.kid });
        const f = decodeFrame(v.payload);
        expect(f).toMatchObject({ serial: 'PACK-0001', counter: i, firmware: '1.4.2', soc: 800 });
        expect(r.produced[i]).toEqual({ serial: 'PACK-0001', counter: i, coseSha256hex: toHex(sha256(m.cose)), producedAt: T0 + 1_000 + i * 1000 });
      });
      expect(decodeFrame(parseSign1(frames[0]!.cose).payload).time).toBe(T0 + 1_000);
    });
  }

  it('answers BAD_CHAIN for a chain whose leaf carries another device key', async () => {
    const factory = await makeFactory('Ed25519');
    const r = await rig();
    r.link.connect();
    await r.ask({ op: 'keygen', alg: -8 });
    const stranger = await rig();
    stranger.link.connect();
    const theirs = parseResult('keygen', await stranger.ask({ op: 'keygen', alg: -8 }));
    if (theirs.op !== 'keygen') throw new Error('keygen');
    const chain = await factory.issue(theirs.publicKey, 'Ed25519', 'PACK-0002');
    const res = await r.ask({ op: 'setchain', chain });
    expect(res.status).toBe('BAD_CHAIN');
    expect(r.fw.provisioned).toBe(false);
    expect((await r.ask({ op: 'setchain', chain: [Uint8Array.of(0x30, 0x00)] })).status).toBe('BAD_CHAIN');
  });

  it('answers EXISTS to keygen without force, and force starts a new identity without reusing counters', async () => {
    const factory = await makeFactory('Ed25519');
    const r = await rig();
    r.link.connect();
    await provision(r, factory, 'Ed25519');
    const first = r.fw.hello().publicKey;
    await r.fw.tick(T0 + 4_000);
    expect(r.fw.flash.ring.size).toBe(4);
    expect((await r.ask({ op: 'keygen', alg: -8 })).status).toBe('EXISTS');
    expect(r.fw.hello().publicKey).toEqual(first);

    const forced = parseResult('keygen', await r.ask({ op: 'keygen', alg: -7, force: true }));
    if (forced.op !== 'keygen') throw new Error('keygen');
    expect(forced.publicKey).not.toEqual(first);
    const hello = r.fw.hello();
    expect(hello).toMatchObject({ alg: -7, chain: [], serial: '', nextCounter: 4, unacked: 0 });
    expect(r.fw.stats.framesWiped).toBe(4);
    expect(r.discarded.map((d) => d.reason)).toEqual(['rekey', 'rekey', 'rekey', 'rekey']);
    const chain = await factory.issue(forced.publicKey, 'ES256', 'PACK-0009');
    expect((await r.ask({ op: 'setchain', chain })).status).toBe('ok');
    await r.fw.tick(T0 + 1_000);
    expect(r.produced.at(-1)).toMatchObject({ serial: 'PACK-0009', counter: 4 });
  });

  it('answers NO_KEY, NO_CHAIN, UNKNOWN_OP and BAD_ARGS with the request id', async () => {
    const r = await rig();
    r.link.connect();
    for (const call of [{ op: 'pubkey' }, { op: 'prove', challenge: new Uint8Array(32) }, { op: 'selftest' }, { op: 'setchain', chain: [Uint8Array.of(1)] }] as RequestCall[]) {
      expect((await r.ask(call)).status).toBe('NO_KEY');
    }
    await r.ask({ op: 'keygen', alg: -8 });
    expect((await r.ask({ op: 'selftest' })).status).toBe('NO_CHAIN');
    r.link.host.send({ type: 'request', id: 77, op: 'format_flash', args: new Map() });
    r.link.host.send({ type: 'request', id: 78, op: 'keygen', args: new Map([[1, -9]]) });
    await until(() => r.link.host.received.filter((m) => m.type === 'response').length >= 7, 'responses');
    const statuses = new Map(r.link.host.received.flatMap((m) => (m.type === 'response' ? [[m.id, m.status] as const] : [])));
    expect(statuses.get(77)).toBe('UNKNOWN_OP');
    expect(statuses.get(78)).toBe('BAD_ARGS');
  });

  it('selftest returns a fresh signed frame that takes a counter and joins the resend ring', async () => {
    const factory = await makeFactory('Ed25519');
    const r = await rig();
    r.link.connect();
    const chain = await provision(r, factory, 'Ed25519');
    r.now.t = T0 + 42_000;
    const res = parseResult('selftest', await r.ask({ op: 'selftest' }));
    if (res.op !== 'selftest') throw new Error('selftest');
    const device = factory.trust.verifyChain(chain, new Date(T0));
    const frame = decodeFrame(verifySign1(res.cose, { publicKey: device.publicKey, kid: device.kid }).payload);
    expect(frame).toMatchObject({ counter: 0, time: T0 + 42_000, serial: 'PACK-0001' });
    expect(r.fw.flash.ring.has(0)).toBe(true);
    expect(r.fw.hello().nextCounter).toBe(1);
  });
});

describe('firmware delivery', () => {
  async function provisioned(opts: Parameters<typeof rig>[0] = {}): Promise<Rig> {
    const r = await rig(opts);
    r.link.connect();
    await provision(r, await makeFactory('Ed25519'), 'Ed25519');
    return r;
  }
  /** First letters of the message types: f(rame), h(ello), r(esponse), e(rror notice). */
  const types = (ms: readonly Message[]): string => ms.map((m) => m.type[0]).join('');

  it('frees acknowledged frames from the ring, durably and idempotently', async () => {
    const r = await provisioned();
    await r.fw.tick(T0 + 5_000);
    await until(() => r.counters().length === 5, 'five frames');
    r.link.host.send({ type: 'ack', ranges: [[0, 2]] });
    await until(() => r.fw.flash.ring.size === 2, 'ring of 2');
    r.link.host.send({ type: 'ack', ranges: [[0, 2]] }); // a repeat frees nothing
    r.link.host.send({ type: 'ack', ranges: [[9, 20]] }); // counters the device never held
    await r.fw.tick(T0 + 5_000);
    expect(r.fw.stats.framesAcked).toBe(3);
    const dir = r.dir;
    await r.fw.stop();
    const again = await rig({ dir });
    expect([...again.fw.flash.ring.entries()].map((e) => e.counter)).toEqual([3, 4]);
    again.link.connect();
    again.link.host.send({ type: 'ack', ranges: [[0, Number.MAX_SAFE_INTEGER]] });
    await until(() => again.fw.flash.ring.size === 0, 'empty ring');
  });

  it('after a reconnect sends a hello, then every unacknowledged frame from the oldest', async () => {
    const r = await provisioned();
    await r.fw.tick(T0 + 5_000);
    await until(() => r.counters().length === 5, 'five frames');
    r.link.host.send({ type: 'ack', ranges: [[0, 1]] });
    await until(() => r.fw.flash.ring.size === 3, 'ring of 3');
    r.link.disconnect();
    await r.fw.tick(T0 + 7_000); // frames 5 and 6 are stored while nobody listens
    const before = r.link.host.received.length;
    r.link.connect();
    await until(() => r.link.host.received.length === before + 6, 'hello and five frames');
    const after = r.link.host.received.slice(before);
    expect(after[0]).toMatchObject({ type: 'hello', nextCounter: 7, unacked: 5 });
    expect(r.counters().slice(5)).toEqual([2, 3, 4, 5, 6]);
    expect(r.fw.stats.framesResent).toBe(3);
  });

  it('treats a hello request as a new session: the result, then every unacknowledged frame again', async () => {
    const r = await provisioned();
    await r.fw.tick(T0 + 2_000);
    await until(() => r.counters().length === 2, 'two frames');
    const before = r.link.host.received.length;
    await r.ask({ op: 'hello' });
    await until(() => r.counters().length === 4, 'resent frames');
    expect(types(r.link.host.received.slice(before))).toBe('rff');
  });

  it('resends a frame the host skipped when it acknowledges a later one (lost on the wire)', async () => {
    const r = await provisioned();
    await r.fw.tick(T0 + 3_000);
    await until(() => r.counters().length === 3, 'three frames');
    r.link.host.send({ type: 'ack', ranges: [[0, 0], [2, 2]] });
    await until(() => r.counters().length === 4, 'the resend');
    expect(r.counters()).toEqual([0, 1, 2, 1]);
    r.link.host.send({ type: 'ack', ranges: [[1, 1]] });
    await until(() => r.fw.flash.ring.size === 0, 'empty ring');
  });

  it('drops the oldest frame when the ring is full, counts it and tells the host BUFFER_FULL', async () => {
    const r = await provisioned({ ringCapacity: 3 });
    r.link.disconnect();
    await r.fw.tick(T0 + 5_000);
    expect([...r.fw.flash.ring.entries()].map((e) => e.counter)).toEqual([2, 3, 4]);
    expect(r.fw.stats.framesDropped).toBe(2);
    expect(r.discarded).toEqual([
      { serial: 'PACK-0001', counter: 0, reason: 'ring-full' },
      { serial: 'PACK-0001', counter: 1, reason: 'ring-full' },
    ]);
    const before = r.link.host.received.length;
    r.link.connect();
    await until(() => r.counters().length === 3, 'three frames');
    expect(types(r.link.host.received.slice(before))).toBe('hefff');
    expect(r.link.host.received[before + 1]).toMatchObject({ type: 'error', code: 'BUFFER_FULL', message: expect.stringContaining(' 2 ') as string });
    // While connected, further drops give no notice per frame: one per session.
    await r.fw.tick(T0 + 8_000);
    await until(() => r.counters().length === 6, 'three more frames');
    expect(r.fw.stats.framesDropped).toBe(5);
    expect(r.link.host.received.filter((m) => m.type === 'error')).toHaveLength(1);
  });

  it('counts garbage, bad CRCs and wrong-direction messages by code and keeps answering', async () => {
    const r = await provisioned();
    const ack = encodeLine({ type: 'ack', ranges: [[0, 0]] });
    ack.set([ack[5]! ^ 0x01], 5); // one flipped bit: the CRC no longer matches
    r.link.host.sendRaw(Buffer.from('AT+RESET\r\n\x00\xff noise\n'));
    r.link.host.sendRaw(ack);
    r.link.host.send({ type: 'frame', cose: Uint8Array.of(0xd2) });
    r.link.host.send({ type: 'error', code: 'HOST_BUSY', message: 'later' });
    expect((await r.ask({ op: 'pubkey' })).status).toBe('ok');
    expect(r.fw.stats.badInput).toEqual({ LINE_GARBAGE: 2, LINE_CRC: 1, MSG_DIRECTION: 1 });
    expect(r.fw.stats.noticesReceived).toBe(1);
  });

  it('reboots on request after answering, and comes back from flash with the same identity and counter', async () => {
    const r = await provisioned();
    await r.fw.tick(T0 + 2_000);
    await until(() => r.counters().length === 2, 'two frames');
    const hello = r.fw.hello();
    const before = r.link.host.received.length;
    expect((await r.ask({ op: 'reboot' })).status).toBe('ok');
    await until(() => r.counters().length === 4, 'hello and resends after the reboot');
    expect(types(r.link.host.received.slice(before))).toBe('rhff');
    expect(r.fw.stats.reboots).toBe(1);
    expect(r.fw.hello()).toEqual(hello);
  });

  it('keeps key, chain, counter and unacknowledged frames across a restart', async () => {
    const r = await provisioned();
    await r.fw.tick(T0 + 4_000);
    r.link.host.send({ type: 'ack', ranges: [[1, 1]] });
    await until(() => r.fw.flash.ring.size === 3, 'ring of 3');
    const hello = r.fw.hello();
    await r.fw.stop();
    const again = await rig({ dir: r.dir });
    expect(again.fw.hello()).toEqual(hello);
    expect(again.fw.flash.boot.cleanShutdown).toBe(true);
    expect(again.fw.flash.savedSensor).toEqual({ calls: 4 }); // the sensor snapshot came back too
    await again.fw.tick(T0 + 1_000);
    expect(again.produced.map((p) => p.counter)).toEqual([4]);
  });

  it('produces at most maxCatchUp frames when device time jumps, and counts the skipped periods', async () => {
    const r = await provisioned({ maxCatchUp: 10, periodMs: 500 });
    await r.fw.tick(T0 + 60_000);
    expect(r.fw.stats.framesProduced).toBe(10);
    expect(r.fw.stats.skippedPeriods).toBe(110);
    await r.fw.tick(T0 + 60_500);
    expect(r.produced.at(-1)?.producedAt).toBe(T0 + 60_500);
  });

  it('never shows the private key: not on the wire, in stats, in inspect output, nor in any file but identity.json (0600)', async () => {
    const r = await provisioned();
    await r.fw.tick(T0 + 3_000);
    await r.ask({ op: 'prove', challenge: new Uint8Array(32) });
    await r.ask({ op: 'hello' });
    await r.ask({ op: 'keygen', alg: -8 });
    const identity = JSON.parse(await readFile(join(r.dir, 'identity.json'), 'utf8')) as { secretKey: string };
    const secret = Buffer.from(identity.secretKey, 'hex');
    expect(secret.length).toBe(32);
    const wire = Buffer.concat(r.link.host.received.map((m) => encodeLine(m)));
    expect(wire.indexOf(secret)).toBe(-1);
    const texts = [wire.toString('latin1'), JSON.stringify(r.fw.stats), inspect(r.fw, { depth: 8 }), inspect(r.fw.flash, { depth: 8 }), JSON.stringify(r.fw.hello(), (_k, v: unknown) => (v instanceof Uint8Array ? toHex(v) : v))];
    for (const t of texts) {
      expect(t).not.toContain(identity.secretKey);
      expect(t).not.toContain(secret.toString('base64'));
    }
    for (const name of await readdir(r.dir)) {
      const bytes = await readFile(join(r.dir, name));
      expect(((await stat(join(r.dir, name))).mode & 0o777).toString(8)).toBe('600');
      if (name !== 'identity.json') expect([name, bytes.indexOf(secret), bytes.toString('latin1').includes(identity.secretKey)]).toEqual([name, -1, false]);
    }
  });
});
