/**
 * Readable, JSON-friendly renderings of wire messages, used by the vector files
 * (test/vectors/messages.json, serial.json, ble.json), their tests, and for logging: byte strings as
 * lowercase hex, CBOR maps in RFC 8949 §8 diagnostic notation (`{1: -8, 2: h'00ff'}`), and a stream's
 * events as short labels (a message's type letter, or an error's code). Pure; not a decoder.
 */
import { toHex } from './bytes.js';
import { CborTag, type CborValue } from './cbor.js';
import type { DecodeEvent, Message } from './messages.js';

/** RFC 8949 §8 diagnostic notation of a value in our CBOR subset. */
export function diag(v: CborValue): string {
  if (v === null) return 'null';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (v instanceof Uint8Array) return `h'${toHex(v)}'`;
  if (Array.isArray(v)) return `[${v.map(diag).join(', ')}]`;
  if (v instanceof CborTag) return `${v.tag}(${diag(v.value)})`;
  return `{${[...v.entries()].map(([k, x]) => `${diag(k)}: ${diag(x)}`).join(', ')}}`;
}

/** A JSON rendering: Uint8Array → hex, Map → diagnostic notation, arrays and objects recursively. */
export function toJson(v: unknown): unknown {
  if (v instanceof Uint8Array) return toHex(v);
  if (v instanceof Map) return diag(v as Map<number, CborValue>);
  if (Array.isArray(v)) return v.map(toJson);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(x)]));
  }
  return v;
}

/** JSON rendering of a message (see toJson). */
export function messageJson(m: Message): unknown {
  return toJson(m);
}

const LETTER: Record<Message['type'], string> = { frame: 'F', ack: 'A', hello: 'H', request: 'Q', response: 'R', error: 'E' };

/** Events as labels: "F", "A", ... for messages, the error code for errors. */
export function eventLabels(events: readonly DecodeEvent[]): string[] {
  return events.map((e) => (e.kind === 'message' ? LETTER[e.message.type] : e.error.code));
}
