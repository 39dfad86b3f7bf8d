import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { errorResponse, okResponse, type Message, type TrustStore } from '../../protocol/index.js';
import type { DeviceChannel } from '../transport/types.js';
import { blankHello, TestFactory, VALIDITY, type TestPack } from './ingest-testkit.js';
import type { RejectInput } from './quarantine.js';
import { SessionTable } from './session.js';

let trust: TrustStore;
let pack: TestPack;

beforeAll(async () => {
  const f = await TestFactory.create();
  trust = await f.trust();
  pack = await f.pack('PACK-0001');
});

afterEach(() => {
  vi.useRealTimers();
});

function channel(id = 'memory:a'): DeviceChannel & { sent: Message[] } {
  const sent: Message[] = [];
  return { id, source: id, kind: 'memory', openedAt: 0, isOpen: true, sent, send: (m) => (sent.push(m), Promise.resolve()), close: () => Promise.resolve() };
}

function table(now = () => Date.now()) {
  const rejects: RejectInput[] = [];
  const t = new SessionTable({ trust, now, reject: (r) => rejects.push(r), helloRetryMs: 1000, helloRetryMaxMs: 4000, revalidateMs: 1000 });
  return { t, rejects, codes: () => rejects.map((r) => r.code) };
}

const helloRequests = (ch: { sent: Message[] }): number => ch.sent.filter((m) => m.type === 'request' && m.op === 'hello').length;

describe('SessionTable', () => {
  it('when a channel opens › asks hello; the answer verifies the chain and opens the gate', () => {
    const { t, codes } = table();
    const ch = channel();
    t.open(ch);
    const req = ch.sent[0];
    expect(req).toMatchObject({ type: 'request', op: 'hello' });
    expect(t.gate(ch)).toMatchObject({ ok: false, code: 'NO_SESSION' });
    const { type: _t, ...hello } = pack.hello(5, 2);
    t.message(ch, okResponse(req?.type === 'request' ? req.id : -1, { op: 'hello', hello }));
    expect(t.gate(ch)).toMatchObject({ ok: true, device: { packSerial: 'PACK-0001' } });
    expect(t.list()[0]).toMatchObject({ state: 'verified', serial: 'PACK-0001', nextCounter: 5, unacked: 2 });
    expect(codes()).toEqual([]);
  });

  it('when the device does not answer › asks again with a doubling backoff, capped', () => {
    vi.useFakeTimers();
    const { t } = table();
    const ch = channel();
    t.open(ch);
    vi.advanceTimersByTime(999);
    expect(helloRequests(ch)).toBe(1);
    vi.advanceTimersByTime(1); // 1 s
    expect(helloRequests(ch)).toBe(2);
    vi.advanceTimersByTime(2000); // +2 s
    expect(helloRequests(ch)).toBe(3);
    vi.advanceTimersByTime(4000 * 3); // then every 4 s (the cap)
    expect(helloRequests(ch)).toBe(6);
    t.message(ch, pack.hello());
    vi.advanceTimersByTime(60_000);
    expect(helloRequests(ch)).toBe(6); // verified: never asked again
    t.close();
  });

  it('when the device answers the hello with an error › counts HELLO_FAILED', () => {
    const { t, codes } = table();
    const ch = channel();
    t.open(ch);
    const req = ch.sent[0];
    t.message(ch, errorResponse(req?.type === 'request' ? req.id : -1, 'BUSY', 'try later'));
    expect(codes()).toEqual(['HELLO_FAILED']);
    t.close();
  });

  it('when a response answers a request the gateway never sent, or the device sends host messages › UNEXPECTED_MESSAGE', () => {
    const { t, codes } = table();
    const ch = channel();
    t.open(ch);
    t.message(ch, okResponse(424242, { op: 'reboot' }));
    t.message(ch, { type: 'ack', ranges: [[1, 1]] });
    t.message(ch, { type: 'request', id: 1, op: 'hello', args: new Map() });
    expect(codes()).toEqual(['UNEXPECTED_MESSAGE', 'UNEXPECTED_MESSAGE', 'UNEXPECTED_MESSAGE']);
    t.close();
  });

  it('when the device reports an error notice › records DEVICE_NOTICE with its code', () => {
    const { t, rejects } = table();
    const ch = channel();
    t.open(ch);
    t.message(ch, pack.hello());
    t.message(ch, { type: 'error', code: 'BUFFER_FULL', message: '3 oldest unacknowledged frame(s) dropped' });
    expect(rejects).toEqual([expect.objectContaining({ code: 'DEVICE_NOTICE', serial: 'PACK-0001', detail: expect.stringContaining('BUFFER_FULL') as unknown })]);
    t.close();
  });

  it('when a provisioned device reboots and greets again unprovisioned › closes the gate', () => {
    const { t, codes } = table();
    const ch = channel();
    t.open(ch);
    t.message(ch, pack.hello());
    expect(t.gate(ch).ok).toBe(true);
    t.message(ch, blankHello());
    expect(t.gate(ch)).toMatchObject({ ok: false, code: 'DEVICE_UNPROVISIONED' });
    expect(codes()).toEqual(['DEVICE_UNPROVISIONED']);
    t.close();
  });

  it('when the certificate expires during a session › the next revalidation refuses CERT_EXPIRED', () => {
    let now = Date.now();
    const { t, codes } = table(() => now);
    const ch = channel();
    t.open(ch);
    t.message(ch, pack.hello());
    expect(t.gate(ch).ok).toBe(true);
    now = VALIDITY.notAfter.getTime() + 1000;
    expect(t.gate(ch)).toMatchObject({ ok: false, code: 'CERT_EXPIRED' });
    expect(codes()).toEqual(['CERT_EXPIRED']);
    t.close();
  });

  it('when the hello serial is not the certificate\'s › refuses HELLO_SERIAL_MISMATCH', () => {
    const { t, codes } = table();
    const ch = channel();
    t.open(ch);
    t.message(ch, { ...pack.hello(), serial: 'PACK-0002' });
    expect(codes()).toEqual(['HELLO_SERIAL_MISMATCH']);
    t.close();
  });

  it('when a channel is replaced by a reconnect › messages of the old connection are ignored', () => {
    const { t } = table();
    const old = channel();
    t.open(old);
    const fresh = channel();
    t.open(fresh);
    t.message(old, pack.hello());
    expect(t.gate(fresh)).toMatchObject({ ok: false, code: 'NO_SESSION' });
    expect(t.gate(old)).toMatchObject({ ok: false, code: 'NO_SESSION' });
    t.closeChannel(old); // a late close of the old connection does not end the new session
    t.message(fresh, pack.hello());
    expect(t.gate(fresh).ok).toBe(true);
    t.close();
  });
});
