/**
 * The in-memory transport the pipeline's unit tests use (memory.ts): the channel contract every
 * transport keeps (open/close pairing, TRANSPORT_DOWN after close, new channel per connection),
 * shielded handlers, and the shared caps; plus leaf source naming (endpoint.ts).
 */
import { describe, expect, it } from 'vitest';
import type { Message } from '../../protocol/index.js';
import { sourceText } from './endpoint.js';
import { MemoryTransport } from './memory.js';
import type { ChannelEvents, DeviceChannel, RejectCode } from './types.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const hello: Message = { type: 'request', id: 1, op: 'hello', args: new Map() };
const notice: Message = { type: 'error', code: 'LOW_BATTERY', message: 'cell 3 below 2500 mV' };

class Log implements ChannelEvents {
  readonly lines: string[] = [];
  open(ch: DeviceChannel): void {
    this.lines.push(`open ${ch.id}`);
  }
  message(ch: DeviceChannel, msg: Message): void {
    this.lines.push(`message ${ch.id} ${msg.type}`);
  }
  reject(ch: DeviceChannel, code: RejectCode): void {
    this.lines.push(`reject ${ch.id} ${code}`);
  }
  close(ch: DeviceChannel, reason: string): void {
    this.lines.push(`close ${ch.id} ${reason}`);
  }
}

describe('MemoryTransport', () => {
  it('carries messages both ways through the line codec and reports what the decoder refuses', async () => {
    const t = new MemoryTransport();
    const log = new Log();
    await t.start(log);
    const dev = t.plug('pack-1');
    const ch = dev.channel!;
    expect([ch.id, ch.source, ch.kind, ch.isOpen]).toEqual(['memory:pack-1', 'memory:pack-1', 'memory', true]);
    dev.send(notice);
    dev.write(new TextEncoder().encode('garbage\n'));
    await ch.send(hello);
    await tick();
    expect(dev.received).toEqual([hello]);
    expect(log.lines).toEqual(['open memory:pack-1', 'message memory:pack-1 error', 'reject memory:pack-1 LINE_GARBAGE']);
    const st = t.status();
    expect(st.endpoints[0]).toMatchObject({ state: 'open', messagesIn: 1, messagesOut: 1, rejects: { LINE_GARBAGE: 1 } });
  });

  it('when a device is unplugged › closes its channel, refuses sends with TRANSPORT_DOWN, and a replug is a new channel', async () => {
    const t = new MemoryTransport();
    const log = new Log();
    await t.start(log);
    const dev = t.plug('pack-2');
    const first = dev.channel!;
    dev.write(new TextEncoder().encode('pcE abc')); // a line cut by the unplug
    await tick();
    dev.unplug('cable pulled');
    expect(first.isOpen).toBe(false);
    await expect(first.send(hello)).rejects.toMatchObject({ code: 'TRANSPORT_DOWN', message: expect.stringMatching(/^gateway: transport: channel memory:pack-2 is closed/) as unknown });
    expect(() => {
      dev.send(notice);
    }).toThrow(expect.objectContaining({ code: 'TRANSPORT_DOWN' }) as Error);
    const second = dev.plug();
    expect(second).not.toBe(first);
    expect(log.lines).toEqual(['open memory:pack-2', 'reject memory:pack-2 LINE_TRUNCATED', 'close memory:pack-2 cable pulled', 'open memory:pack-2']);
    expect(t.status().reconnects).toBe(1);
  });

  it('when a handler throws or rejects › counts it and goes on delivering', async () => {
    const t = new MemoryTransport();
    let calls = 0;
    await t.start({
      open: () => undefined,
      message: () => {
        calls += 1;
        if (calls === 1) throw new Error('pipeline bug');
        return Promise.reject(new Error('async pipeline bug')) as unknown as undefined;
      },
      reject: () => undefined,
      close: () => undefined,
    });
    const dev = t.plug('pack-3');
    dev.send(notice);
    dev.send(notice);
    await tick();
    await tick();
    expect(calls).toBe(2);
    expect(t.status()).toMatchObject({ handlerErrors: 2, lastHandlerError: 'async pipeline bug' });
  });

  it('stop closes every channel once; start twice is TRANSPORT_STATE', async () => {
    const t = new MemoryTransport();
    const log = new Log();
    await t.start(log);
    t.plug('a');
    t.plug('b');
    await t.stop();
    await t.stop();
    expect(log.lines.filter((l) => l.startsWith('close'))).toEqual(['close memory:a transport stopped', 'close memory:b transport stopped']);
    await expect(t.start(log)).rejects.toMatchObject({ code: 'TRANSPORT_STATE' });
    expect(() => t.plug('c')).toThrow(expect.objectContaining({ code: 'TRANSPORT_STATE' }) as Error);
  });

  it('applies the rate caps of the real transports', async () => {
    const t = new MemoryTransport({ rate: { messagesPerSecond: 2, burstSeconds: 1 } });
    const log = new Log();
    await t.start(log);
    const dev = t.plug('flood');
    for (let i = 0; i < 10; i++) dev.send(notice);
    await tick();
    expect(log.lines.slice(1)).toEqual(['message memory:flood error', 'message memory:flood error', 'reject memory:flood RATE_LIMITED']);
    expect(t.status().rejects.RATE_LIMITED).toBe(8);
  });
});

describe('sourceText', () => {
  it('keeps short names, replaces control characters, and keeps the tail of long names within 128 characters', () => {
    expect(sourceText('serial', '/dev/ttyUSB0')).toBe('serial:/dev/ttyUSB0');
    expect(sourceText('serial', '/dev/tty\u001b[2J')).toBe('serial:/dev/tty?[2J');
    const long = `/dev/serial/by-id/${'x'.repeat(200)}-if00-port0`;
    const s = sourceText('serial', long);
    expect(s).toHaveLength(128);
    expect(s.startsWith('serial:…')).toBe(true);
    expect(s.endsWith('-if00-port0')).toBe(true);
  });
});
