/**
 * The simulated BMU over a real socat pty pair, with real serialport on both ends: a host provisions
 * it and reads signed frames that verify, acks empty its ring, the link is paced at the baud rate,
 * and an unplug/replug (socat killed and restarted) loses no frame. Every socat, port and firmware
 * is stopped in afterEach, also when a test fails.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPort } from 'serialport';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ackMessages,
  decodeFrame,
  encodeLine,
  LineDecoder,
  parseResult,
  parseSign1,
  requestMessage,
  verifySign1,
  type Message,
  type RequestCall,
  type ResponseMessage,
} from '../protocol/index.js';
import { Firmware, type ProducedFrame } from './firmware.js';
import { fixedSensor, makeFactory, T0, until, type TestFactory } from './firmware-testkit.js';
import { DeviceFlash } from './flash.js';
import { createPtyPair, type PtyPair } from './pty.js';
import { SerialDeviceLink } from './serial-link.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** A host (gateway or station) on the other end: real serialport, real line decoder. */
interface Host {
  readonly port: SerialPort;
  readonly messages: Message[];
  readonly errors: string[];
  bytes: number;
  lastByteAt: number;
  closedWith: Error | null | undefined;
  send(msg: Message): void;
  ask(call: RequestCall): Promise<ResponseMessage>;
  close(): Promise<void>;
}

let nextId = 1;

async function openHost(path: string): Promise<Host> {
  const port = new SerialPort({ path, baudRate: 115_200, autoOpen: false });
  await new Promise<void>((resolve, reject) => {
    port.open((err) => {
      if (err) reject(err);
      else resolve();
    });
  });
  const decoder = new LineDecoder();
  const host: Host = {
    port,
    messages: [],
    errors: [],
    bytes: 0,
    lastByteAt: 0,
    closedWith: undefined,
    send(msg) {
      port.write(Buffer.from(encodeLine(msg)));
    },
    async ask(call) {
      const id = nextId++;
      host.send(requestMessage(id, call));
      let r: ResponseMessage | undefined;
      await until(() => (r = host.messages.find((m): m is ResponseMessage => m.type === 'response' && m.id === id)) !== undefined, `response to ${call.op}`);
      return r!;
    },
    async close() {
      if (port.isOpen) {
        await new Promise((resolve) => {
          port.close(resolve);
        });
      }
    },
  };
  port.on('data', (chunk: Buffer) => {
    host.bytes += chunk.length;
    host.lastByteAt = performance.now();
    for (const ev of decoder.push(chunk)) {
      if (ev.kind === 'message') host.messages.push(ev.message);
      else host.errors.push(ev.error.code);
    }
  });
  port.on('close', (err: Error | null) => (host.closedWith = err));
  cleanups.push(() => host.close());
  return host;
}

interface Bench {
  dir: string;
  pair: PtyPair;
  link: SerialDeviceLink;
  fw: Firmware;
  now: { t: number };
  produced: ProducedFrame[];
}

async function bench(): Promise<Bench> {
  const dir = await mkdtemp(join(tmpdir(), 'hwsim-serial-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const pair = await createPtyPair({ dir, name: 'bmu0' });
  cleanups.push(() => pair.stop());
  const link = SerialDeviceLink.open({ path: pair.devicePath });
  cleanups.push(() => link.close());
  const flash = await DeviceFlash.open({ dir: join(dir, 'flash'), factory: { model: 'PC-48V-100Ah', firmware: '1.4.2' }, durable: false });
  const now = { t: T0 };
  const produced: ProducedFrame[] = [];
  const fw = Firmware.boot({ flash, link, sensor: fixedSensor(), clock: () => now.t, random: (n) => new Uint8Array(randomBytes(n)), onFrameProduced: (f) => produced.push(f) });
  cleanups.push(() => fw.stop());
  await until(() => link.isUp, 'device link up');
  return { dir, pair, link, fw, now, produced };
}

/** The station's sequence over the wire: hello, keygen, setchain. */
async function provisionOverSerial(host: Host, factory: TestFactory): Promise<Uint8Array[]> {
  const hello = parseResult('hello', await host.ask({ op: 'hello' }));
  if (hello.op !== 'hello') throw new Error('hello');
  expect(hello.hello.alg).toBeNull();
  const keygen = parseResult('keygen', await host.ask({ op: 'keygen', alg: -7 }));
  if (keygen.op !== 'keygen') throw new Error('keygen');
  const chain = await factory.issue(keygen.publicKey, 'ES256', 'PACK-0042');
  expect((await host.ask({ op: 'setchain', chain })).status).toBe('ok');
  return chain;
}

const frameCounters = (ms: readonly Message[]): number[] =>
  ms.flatMap((m) => (m.type === 'frame' ? [decodeFrame(parseSign1(m.cose).payload).counter] : []));

describe('SerialDeviceLink over a socat pty', () => {
  it('lets a host SerialPort provision a BMU, read frames that verify, and empty its ring with acks', async () => {
    const factory = await makeFactory('Ed25519');
    const b = await bench();
    const host = await openHost(b.pair.hostPath);
    const chain = await provisionOverSerial(host, factory);
    await b.fw.tick(T0 + 5_000);
    await until(() => frameCounters(host.messages).length === 5, 'five frames on the host');
    const device = factory.trust.verifyChain(chain, new Date(T0));
    for (const m of host.messages) {
      if (m.type !== 'frame') continue;
      expect(decodeFrame(verifySign1(m.cose, { publicKey: device.publicKey, kid: device.kid }).payload).serial).toBe('PACK-0042');
    }
    expect(frameCounters(host.messages)).toEqual([0, 1, 2, 3, 4]);
    expect(b.fw.flash.ring.size).toBe(5);
    host.send({ type: 'ack', ranges: [[0, 4]] });
    await until(() => b.fw.flash.ring.size === 0, 'empty ring');
    expect(host.errors).toEqual([]);
    expect(b.link.stats.linesWritten).toBe(host.messages.length);
  });

  it('paces the device at the baud rate: N bytes take at least N / 11520 s', async () => {
    const b = await bench();
    const host = await openHost(b.pair.hostPath);
    const notice: Message = { type: 'error', code: 'PACE_TEST', message: 'x'.repeat(240) };
    const lineBytes = encodeLine(notice).length;
    const n = 40;
    const start = performance.now();
    await Promise.all(Array.from({ length: n }, () => b.link.send(notice)));
    await until(() => host.bytes >= n * lineBytes, 'all bytes on the host');
    const seconds = (host.lastByteAt - start) / 1000;
    const wire = (n * lineBytes) / 11_520;
    expect(b.link.rate).toBe(11_520);
    expect(seconds / wire).toBeGreaterThanOrEqual(0.98);
    expect(seconds / wire).toBeLessThan(3);
  });

  it('survives unplug and replug: the host sees close, the device goes down, then resends so every counter arrives', async () => {
    const factory = await makeFactory('ES256');
    const b = await bench();
    let downs = 0;
    b.link.onDown(() => downs++);
    let host = await openHost(b.pair.hostPath);
    await provisionOverSerial(host, factory);
    await b.fw.tick(T0 + 4_000);
    await until(() => frameCounters(host.messages).length === 4, 'four frames');
    host.send({ type: 'ack', ranges: [[0, 1]] });
    await until(() => b.fw.flash.ring.size === 2, 'frames 0-1 acked');
    const seen = [...frameCounters(host.messages)];

    await b.pair.stop(); // unplug
    await until(() => host.closedWith !== undefined && !b.link.isUp, 'close on both ends');
    expect(host.closedWith).toMatchObject({ disconnected: true });
    expect(downs).toBe(1);
    await b.fw.tick(T0 + 7_000); // frames 4-6 are produced while unplugged

    await b.pair.restart(); // replug: same paths
    await until(() => b.link.isUp, 'device link up again');
    host = await openHost(b.pair.hostPath);
    const hello = parseResult('hello', await host.ask({ op: 'hello' })); // the host announces itself
    if (hello.op !== 'hello') throw new Error('hello');
    expect(hello.hello).toMatchObject({ nextCounter: 7, unacked: 5, serial: 'PACK-0042' });
    // The host acks only what it got; lines written before it opened the port are simply lost.
    await until(() => new Set([...seen, ...frameCounters(host.messages)]).size === 7, 'resent frames');
    seen.push(...frameCounters(host.messages));
    for (const ack of ackMessages(frameCounters(host.messages))) host.send(ack);
    await until(() => b.fw.flash.ring.size === 0, 'empty ring');

    const truth = b.produced.map((p) => p.counter);
    expect(truth).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect([...new Set(seen)].sort((x, y) => x - y)).toEqual(truth); // every counter, once after dedupe
    expect(b.link.stats).toMatchObject({ opens: 2, disconnects: 1 });
    expect(b.fw.stats.framesResent).toBeGreaterThanOrEqual(2);
  });

  it('keeps writing after unplugs that land mid-write (serialport never calls back for a port that is closing)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hwsim-serial-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const pair = await createPtyPair({ dir, name: 'busy' });
    cleanups.push(() => pair.stop());
    const link = SerialDeviceLink.open({ path: pair.devicePath, baudRate: 4_000_000 });
    cleanups.push(() => link.close());
    const notice: Message = { type: 'error', code: 'BUSY', message: 'y'.repeat(200) };
    const pump = new AbortController();
    cleanups.push(() => {
      pump.abort();
      return Promise.resolve();
    });
    // A device that is always mid-write, so the unplugs below hit writes in flight.
    void (async () => {
      while (!pump.signal.aborted) await link.send(notice).catch(() => new Promise((r) => setTimeout(r, 5)));
    })();
    for (let i = 0; i < 8; i++) {
      await until(() => link.isUp, 'device link up');
      await new Promise((r) => setTimeout(r, 10 + i * 3));
      await pair.stop();
      await until(() => !link.isUp, 'device link down');
      await pair.restart();
      await until(() => link.isUp, 'device link up again');
      const written = await Promise.race([link.send(notice).then(() => 'written', () => 'refused'), new Promise((r) => setTimeout(() => { r('stalled'); }, 2000))]);
      expect(written, `cycle ${i}`).not.toBe('stalled');
    }
  });
});
