/**
 * Device input to pipeline events (input.ts): the serial line with the port's caps, checked for
 * every way the chunks of a stream can be split (fast-check), rate caps with a fake clock, and BLE
 * chunk reassembly with timeouts and drops.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chunkMessage, concatBytes, encodeLine, type Message } from '../../protocol/index.js';
import { EndpointCounters, InputGate } from './endpoint.js';
import { ChunkInput, LineInput, type InputSink } from './input.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const note = (i: number, text = `n${i}`): Message => ({ type: 'error', code: 'NOTE', message: text });
const roomy = { messagesPerSecond: 1e9, bytesPerSecond: 1e12 };

/** What reached the sink, as short labels: `E:<text>` for a message, the code for a reject. */
function recorder(): { sink: InputSink; seen: string[] } {
  const seen: string[] = [];
  return {
    seen,
    sink: {
      message: (m) => seen.push(m.type === 'error' ? `E:${m.message}` : m.type),
      reject: (code) => seen.push(code),
    },
  };
}

function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let last = 0;
  for (const p of [...points, bytes.length]) {
    out.push(bytes.subarray(last, p));
    last = p;
  }
  return out;
}

describe('LineInput', () => {
  const stream = concatBytes(
    enc('boot banner\r\n'),
    encodeLine(note(1)),
    enc('\r\n'),
    encodeLine({ type: 'error', code: 'LONG', message: 'y'.repeat(150) }), // over a 128-byte cap
    enc(`x${'z'.repeat(300)}\n`), // a long garbage line: LINE_GARBAGE only, never also LINE_TOO_LONG
    encodeLine(note(2)).subarray(0, 10),
    enc('\n'), // the cut line ends: its CRC field is missing
    encodeLine(note(3)),
  );
  const expected = ['LINE_GARBAGE', 'E:n1', 'LINE_TOO_LONG', 'LINE_GARBAGE', 'LINE_ENCODING', 'E:n3'];

  it('when chunks split the stream anywhere › yields the same events, the port cap included', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 12 }), (cuts) => {
        const { sink, seen } = recorder();
        const input = new LineInput(new InputGate(roomy), new EndpointCounters(), sink, 128);
        for (const part of splitAt(stream, cuts)) input.push(part);
        input.end();
        expect(seen).toEqual(expected);
      }),
    );
  });

  it('at the protocol cap of 4096 bytes › leaves over-long lines to the decoder', () => {
    const { sink, seen } = recorder();
    const counters = new EndpointCounters();
    const input = new LineInput(new InputGate(roomy), counters, sink);
    input.push(concatBytes(enc(`pcE ${'A'.repeat(5000)}\n`), encodeLine(note(4))));
    expect(seen).toEqual(['LINE_TOO_LONG', 'E:n4']);
    expect(counters.rejects).toEqual({ LINE_TOO_LONG: 1 });
    expect(counters.messagesIn).toBe(1);
  });

  it('when the connection ends inside a line › reports LINE_TRUNCATED', () => {
    const { sink, seen } = recorder();
    const input = new LineInput(new InputGate(roomy), new EndpointCounters(), sink);
    input.push(encodeLine(note(5)).subarray(0, 12));
    input.end();
    expect(seen).toEqual(['LINE_TRUNCATED']);
  });

  it('when lines come faster than the message cap › drops the excess, counted, with one RATE_LIMITED event a second', () => {
    let now = 0;
    const { sink, seen } = recorder();
    const counters = new EndpointCounters();
    const input = new LineInput(new InputGate({ messagesPerSecond: 3, burstSeconds: 1, bytesPerSecond: 1e9 }, () => now), counters, sink);
    input.push(concatBytes(...Array.from({ length: 10 }, (_, i) => encodeLine(note(i)))));
    expect(seen).toEqual(['E:n0', 'E:n1', 'E:n2', 'RATE_LIMITED']);
    expect(counters.rejects.RATE_LIMITED).toBe(7);
    now = 1000; // three more tokens; the next drop opens a new one-second window
    input.push(concatBytes(...Array.from({ length: 5 }, (_, i) => encodeLine(note(10 + i)))));
    expect(seen.slice(4)).toEqual(['E:n10', 'E:n11', 'E:n12', 'RATE_LIMITED']);
    expect(counters.rejects.RATE_LIMITED).toBe(9);
  });

  it('when a read is over the byte cap › drops the rest and resynchronises at the next LF, never joining lines', () => {
    let now = 0;
    const { sink, seen } = recorder();
    const counters = new EndpointCounters();
    const line = encodeLine(note(6));
    const input = new LineInput(new InputGate({ messagesPerSecond: 1e6, bytesPerSecond: 4096, burstSeconds: 1 }, () => now), counters, sink);
    const many = concatBytes(...Array.from({ length: 400 }, () => line));
    input.push(many);
    const passed = seen.filter((s) => s === 'E:n6').length;
    expect(passed).toBe(Math.floor(4096 / line.length));
    expect(counters.droppedBytes).toBe(many.length - 4096);
    expect(seen.filter((s) => s !== 'E:n6')).toEqual(['RATE_LIMITED']);
    now = 1000;
    // The rest of the cut line is skipped up to its LF; the next whole line decodes.
    input.push(concatBytes(line.subarray(10), encodeLine(note(7))));
    expect(seen.at(-1)).toBe('E:n7');
    expect(seen.filter((s) => s.startsWith('LINE_'))).toEqual([]);
  });

  it('when maxLineBytes is outside 64..4096 › throws TRANSPORT_CONFIG', () => {
    const { sink } = recorder();
    expect(() => new LineInput(new InputGate(), new EndpointCounters(), sink, 32)).toThrow(expect.objectContaining({ code: 'TRANSPORT_CONFIG' }) as Error);
    expect(() => new LineInput(new InputGate(), new EndpointCounters(), sink, 5000)).toThrow(/maxLineBytes/);
  });
});

describe('ChunkInput', () => {
  const msg = note(1, 'a message long enough for several twenty-byte chunks');

  it('reassembles a chunked message and counts its bytes', () => {
    const { sink, seen } = recorder();
    const counters = new EndpointCounters();
    const input = new ChunkInput(new InputGate(roomy), counters, sink);
    const chunks = chunkMessage(msg, 20);
    for (const c of chunks) input.push(c, 0);
    expect(seen).toEqual([`E:${msg.type === 'error' ? msg.message : ''}`]);
    expect(counters.bytesIn).toBe(chunks.reduce((n, c) => n + c.length, 0));
  });

  it('when chunks stop mid-message › reports BLE_TIMEOUT on tick, and on end() at a disconnect', () => {
    const { sink, seen } = recorder();
    const input = new ChunkInput(new InputGate(roomy), new EndpointCounters(), sink, { timeoutMs: 100 });
    const [first] = chunkMessage(msg, 20);
    input.push(first!, 0);
    input.tick(100);
    expect(seen).toEqual([]);
    input.tick(101);
    expect(seen).toEqual(['BLE_TIMEOUT']);
    input.push(first!, 200);
    input.end();
    expect(seen).toEqual(['BLE_TIMEOUT', 'BLE_TIMEOUT']);
  });

  it('when a chunk is over the byte cap › drops it whole, and the gap shows as the reassembler sees it', () => {
    const { sink, seen } = recorder();
    const counters = new EndpointCounters();
    const input = new ChunkInput(new InputGate({ messagesPerSecond: 1e6, bytesPerSecond: 4096, burstSeconds: 1 }, () => 0), counters, sink);
    const chunks = chunkMessage(msg, 20);
    let sent = 0;
    while (counters.droppedBytes === 0) {
      for (const c of chunks) input.push(c, 0);
      sent += 1;
    }
    expect(counters.rejects.RATE_LIMITED).toBeGreaterThan(0);
    expect(seen.filter((s) => s.startsWith('E:'))).toHaveLength(sent - 1);
    expect(seen).toContain('RATE_LIMITED');
  });
});
