/**
 * Device input, bytes to pipeline events, with the per-port caps applied (issue 6 item 2):
 * `LineInput` for the serial line (docs/protocol.md §5.3: protocol's LineDecoder, plus an optional
 * line-length cap below the protocol's 4096 bytes and a byte-rate cap) and `ChunkInput` for BLE
 * notifications (§6.4: protocol's Reassembler). Both pass every decoded message and every decoder
 * error through the endpoint's message-rate cap; what is over a cap is dropped and reported as
 * RATE_LIMITED at most once a second. Neither ever throws for any input: bytes from a device are
 * hostile (STYLE.md habit 3). A fresh input is made for every connection, so bytes of an earlier
 * connection never join this one's lines or messages.
 */
import { LineDecoder, MAX_LINE_BYTES, Reassembler, type DecodeEvent, type Message } from '../../protocol/index.js';
import type { EndpointCounters, InputGate } from './endpoint.js';
import { integerIn } from './limits.js';
import type { RejectCode } from './types.js';

/** Where decoded input goes: the channel's events. */
export interface InputSink {
  message(msg: Message): void;
  reject(code: RejectCode, detail: string, raw?: string): void;
}

const LF = 0x0a;
/** "pc" + a letter A–Z + space: the only start a packchain line has (§5.2 step 3). */
function lineStart(head: readonly number[]): boolean {
  const t = head[2] ?? 0;
  return head[0] === 0x70 && head[1] === 0x63 && t >= 0x41 && t <= 0x5a && head[3] === 0x20;
}

/** Passes decoder events through the message cap into the sink, counting everything. */
function emit(events: readonly DecodeEvent[], gate: InputGate, counters: EndpointCounters, sink: InputSink): void {
  for (const ev of events) {
    if (!gate.admitMessage()) {
      counters.reject('RATE_LIMITED');
      const detail = gate.dropped(ev.kind === 'message' ? `a ${ev.message.type} message` : `a ${ev.error.code} error`);
      if (detail !== undefined) sink.reject('RATE_LIMITED', detail);
    } else if (ev.kind === 'message') {
      counters.messagesIn += 1;
      sink.message(ev.message);
    } else {
      counters.reject(ev.error.code);
      sink.reject(ev.error.code, ev.error.message, ev.raw);
    }
  }
}

/**
 * The serial line of one connection. `maxLineBytes` (64..4096, default 4096) counts the LF and a CR
 * like §5.1; a packchain line over it is one LINE_TOO_LONG, and the rest of the line up to its LF is
 * skipped. When the byte cap cuts a read short, the line in progress is dropped and the input
 * resynchronises at the next LF. Throws GatewayError TRANSPORT_CONFIG for a bad maxLineBytes.
 */
export class LineInput {
  private readonly decoder = new LineDecoder();
  private skipping = false;
  private lineLen = 0;
  private readonly head: number[] = [];

  constructor(
    private readonly gate: InputGate,
    private readonly counters: EndpointCounters,
    private readonly sink: InputSink,
    private readonly maxLineBytes: number = MAX_LINE_BYTES,
  ) {
    integerIn(maxLineBytes, 64, MAX_LINE_BYTES, 'maxLineBytes');
  }

  push(chunk: Uint8Array): void {
    this.counters.bytesIn += chunk.length;
    const n = this.gate.admitBytes(chunk.length);
    this.feed(n < chunk.length ? chunk.subarray(0, n) : chunk);
    if (n < chunk.length) {
      const dropped = chunk.length - n;
      this.counters.droppedBytes += dropped;
      this.counters.reject('RATE_LIMITED');
      const detail = this.gate.dropped(`${dropped} input bytes`);
      if (detail !== undefined) this.sink.reject('RATE_LIMITED', detail);
      this.resync();
    }
  }

  /** The connection ended: a partial line is LINE_TRUNCATED (§5.3), unless it was being skipped. */
  end(): void {
    if (!this.skipping) emit(this.decoder.flush(), this.gate, this.counters, this.sink);
    this.resync();
    this.skipping = false;
  }

  /** Forgets the line in progress (its decoder events are not reported) and skips to the next LF. */
  private resync(): void {
    this.decoder.flush();
    this.skipping = true;
    this.lineLen = 0;
    this.head.length = 0;
  }

  private feed(data: Uint8Array): void {
    let i = 0;
    while (i < data.length) {
      const nl = data.indexOf(LF, i);
      if (this.skipping) {
        if (nl < 0) return;
        this.skipping = false;
        i = nl + 1;
        continue;
      }
      const end = nl < 0 ? data.length : nl;
      if (this.maxLineBytes < MAX_LINE_BYTES) {
        for (let k = i; k < end && this.head.length < 4; k++) this.head.push(data[k] ?? 0);
        if (this.lineLen + end - i > this.maxLineBytes - 1 && lineStart(this.head)) {
          this.counters.reject('LINE_TOO_LONG');
          if (this.gate.admitMessage()) {
            this.sink.reject('LINE_TOO_LONG', `gateway: transport: line longer than this port's cap of ${this.maxLineBytes} bytes, skipped to its LF`);
          }
          this.resync();
          continue; // skipping resumes at i, so this line's LF (if here) ends the skip
        }
      }
      emit(this.decoder.push(data.subarray(i, nl < 0 ? end : nl + 1)), this.gate, this.counters, this.sink);
      if (nl < 0) {
        this.lineLen += end - i;
        i = end;
      } else {
        this.lineLen = 0;
        this.head.length = 0;
        i = nl + 1;
      }
    }
  }
}

/**
 * The BLE notifications of one connection (§6.4), with the clock passed in. A chunk over the byte
 * cap is dropped whole (the reassembler then reports the gap as BLE_SEQUENCE or BLE_CHUNK).
 * Throws ProtocolError BLE_LENGTH / BLE_TIMEOUT for bad reassembler options (as Reassembler).
 */
export class ChunkInput {
  private readonly reassembler: Reassembler;

  constructor(
    private readonly gate: InputGate,
    private readonly counters: EndpointCounters,
    private readonly sink: InputSink,
    options: { maxMessage?: number; timeoutMs?: number } = {},
  ) {
    this.reassembler = new Reassembler(options);
  }

  push(chunk: Uint8Array, nowMs: number): void {
    this.counters.bytesIn += chunk.length;
    if (!this.gate.admitUnit(chunk.length)) {
      this.counters.droppedBytes += chunk.length;
      this.counters.reject('RATE_LIMITED');
      const detail = this.gate.dropped(`a ${chunk.length}-byte chunk`);
      if (detail !== undefined) this.sink.reject('RATE_LIMITED', detail);
      return;
    }
    emit(this.reassembler.push(chunk, nowMs), this.gate, this.counters, this.sink);
  }

  /** Reports a message whose chunks stopped coming (BLE_TIMEOUT). Call periodically. */
  tick(nowMs: number): void {
    emit(this.reassembler.tick(nowMs), this.gate, this.counters, this.sink);
  }

  /** The link went down: a message in progress is one BLE_TIMEOUT (§6.4 "Disconnect"). */
  end(): void {
    emit(this.reassembler.reset(), this.gate, this.counters, this.sink);
  }
}
