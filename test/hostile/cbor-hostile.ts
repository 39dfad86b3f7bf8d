/**
 * Hostile CBOR for the hostile-input suite: a raw writer that can emit what protocol's strict
 * encoder refuses to (non-shortest heads, indefinite lengths, duplicate or unsorted keys, invalid
 * UTF-8, floats, lengths that promise more bytes than follow), hostile items of every kind the
 * RFC 8949 §4.2.1 decoder must refuse, and `mutateCbor`, which takes a VALID encoding (a COSE_Sign1,
 * a frame payload, a hello map), decodes it with protocol's decoder, replaces or damages one item at
 * a random path and writes the tree back — so the damage sits deep inside otherwise well-formed CBOR
 * where the field decoders, not only the tokenizer, have to catch it.
 */
import { CborTag, concatBytes, decodeCbor, utf8, type CborValue } from '../../protocol/index.js';
import type { Rng } from './prng.js';

/** Bytes written verbatim into the tree. */
export class Raw {
  constructor(readonly bytes: Uint8Array) {}
}
interface NodeMap {
  readonly kind: 'map';
  entries: [Node, Node][];
}
interface NodeTag {
  readonly kind: 'tag';
  readonly tag: number;
  value: Node;
}
export type Node = number | string | Uint8Array | boolean | null | Raw | Node[] | NodeMap | NodeTag;

/** A head in its shortest form (n < 2^53). */
export function head(major: number, n: number): Uint8Array {
  const m = major << 5;
  if (n < 24) return Uint8Array.of(m | n);
  if (n < 0x100) return Uint8Array.of(m | 24, n);
  if (n < 0x1_0000) return Uint8Array.of(m | 25, n >>> 8, n & 0xff);
  if (n < 0x1_0000_0000) return Uint8Array.of(m | 26, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  return wideHead(major, n, 27);
}

/** A head with additional info `ai` (24..27) whatever the value: non-shortest when n is small. */
export function wideHead(major: number, n: number, ai: 24 | 25 | 26 | 27): Uint8Array {
  const width = { 24: 1, 25: 2, 26: 4, 27: 8 }[ai];
  const out = new Uint8Array(1 + width);
  out[0] = (major << 5) | ai;
  let v = BigInt(n);
  for (let i = width; i >= 1; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** Writes a node tree: maps keep their entry order (duplicates and disorder included). */
export function write(n: Node): Uint8Array {
  if (n instanceof Raw) return n.bytes;
  if (n === null) return Uint8Array.of(0xf6);
  if (n === true) return Uint8Array.of(0xf5);
  if (n === false) return Uint8Array.of(0xf4);
  if (typeof n === 'number') return n >= 0 ? head(0, n) : head(1, -1 - n);
  if (typeof n === 'string') {
    const b = utf8(n);
    return concatBytes(head(3, b.length), b);
  }
  if (n instanceof Uint8Array) return concatBytes(head(2, n.length), n);
  if (Array.isArray(n)) return concatBytes(head(4, n.length), ...n.map(write));
  if (n.kind === 'map') return concatBytes(head(5, n.entries.length), ...n.entries.flatMap(([k, v]) => [write(k), write(v)]));
  return concatBytes(head(6, n.tag), write(n.value));
}

/** protocol's decoded value as a mutable node tree. */
export function toNode(v: CborValue): Node {
  if (v instanceof Map) return { kind: 'map', entries: [...v].map(([k, x]) => [k, toNode(x)]) };
  if (v instanceof CborTag) return { kind: 'tag', tag: v.tag, value: toNode(v.value) };
  if (Array.isArray(v)) return v.map(toNode);
  return v;
}

const INVALID_UTF8: readonly (readonly number[])[] = [
  [0xff],
  [0xc0, 0x80], // overlong NUL
  [0xe0, 0x80, 0x80], // overlong
  [0xed, 0xa0, 0x80], // UTF-16 surrogate
  [0xe2, 0x82], // truncated sequence
  [0xf4, 0x90, 0x80, 0x80], // beyond U+10FFFF
  [0x80], // lone continuation byte
  [0xf8, 0x88, 0x80, 0x80, 0x80], // 5-byte form
];

/** The kinds of hostile item `hostileItem` makes (the suite reports them by kind). */
export const HOSTILE_ITEM_KINDS = [
  'deep-array',
  'deep-map',
  'deep-tag',
  'indefinite',
  'non-shortest',
  'duplicate-keys',
  'unsorted-keys',
  'bad-utf8',
  'huge-length',
  'oversized-map',
  'int-range',
  'float-simple',
  'wrong-type',
  'random',
] as const;
export type HostileItemKind = (typeof HOSTILE_ITEM_KINDS)[number];

/** One hostile CBOR item of `kind` (a random kind when none is given), at most about `budget` bytes. */
export function hostileItem(rng: Rng, budget: number, kind: HostileItemKind = rng.pick(HOSTILE_ITEM_KINDS)): Uint8Array {
  switch (kind) {
    case 'deep-array': {
      const depth = rng.chance(0.5) ? rng.range(5, 40) : rng.range(40, Math.max(41, budget - 2));
      return concatBytes(new Uint8Array(depth).fill(0x81), Uint8Array.of(0x00));
    }
    case 'deep-map': {
      const depth = rng.range(5, Math.max(6, Math.floor(budget / 2) - 2));
      const out = new Uint8Array(depth * 2 + 1);
      for (let i = 0; i < depth; i++) out.set([0xa1, 0x01], i * 2);
      return out;
    }
    case 'deep-tag': {
      const depth = rng.range(2, Math.max(3, budget - 2));
      return concatBytes(new Uint8Array(depth).fill(rng.pick([0xd2, 0xc6, 0xd8])), rng.chance(0.5) ? Uint8Array.of(0x12) : Uint8Array.of(0x80));
    }
    case 'indefinite':
      return Uint8Array.from(
        rng.pick([
          [0x9f, 0x01, 0x02, 0xff],
          [0xbf, 0x01, 0x02, 0xff],
          [0x5f, 0x41, 0x00, 0xff],
          [0x7f, 0x61, 0x61, 0xff],
          [0x9f, 0x9f, 0x9f],
          [0xff],
          [0x1f],
          [0x84, 0x40, 0xa0, 0x5f, 0xff, 0x40],
        ]),
      );
    case 'non-shortest': {
      const major = rng.pick([0, 1, 2, 3, 4, 5, 6]);
      const n = rng.range(0, 23);
      const h = wideHead(major, n, rng.pick([24, 25, 26, 27] as const));
      const tail = major === 2 || major === 3 ? new Uint8Array(n).fill(0x61) : major >= 4 ? new Uint8Array(major === 5 ? 2 * n : n).fill(0x00) : new Uint8Array(0);
      return concatBytes(h, major === 6 ? Uint8Array.of(0x00) : tail);
    }
    case 'duplicate-keys': {
      const k = rng.range(1, 20);
      return write({ kind: 'map', entries: [[k, 1], [k, 2]] });
    }
    case 'unsorted-keys':
      return write({ kind: 'map', entries: [[rng.range(10, 20), 1], [rng.range(1, 9), 2]] });
    case 'bad-utf8': {
      const bad = rng.pick(INVALID_UTF8);
      const pre = utf8('PK-'.slice(0, rng.int(4)));
      const body = concatBytes(pre, Uint8Array.from(bad));
      return concatBytes(head(3, body.length), body);
    }
    case 'huge-length': {
      const major = rng.pick([2, 3, 4, 5]);
      const n = rng.pick([0xffff_ffff, 2 ** 53 - 1, 2 ** 40, 0x7fff_ffff, budget * 4 + 1]);
      return concatBytes(head(major, n), rng.bytes(rng.int(8)));
    }
    case 'oversized-map': {
      if (rng.chance(0.5)) return concatBytes(head(5, rng.pick([1000, 65_535, 1_000_000])), Uint8Array.of(0x01, 0x01));
      const n = Math.max(1, Math.min(rng.range(33, 400), Math.floor(budget / 4)));
      return write({ kind: 'map', entries: Array.from({ length: n }, (_, i): [Node, Node] => [i, i]) });
    }
    case 'int-range':
      return Uint8Array.from(
        rng.pick([
          [0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
          [0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
          [0x1b, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // 2^53
          [0xc2, 0x49, 0x01, 0, 0, 0, 0, 0, 0, 0, 0], // bignum
          [0x3a, 0x7f, 0xff, 0xff, 0xff],
        ]),
      );
    case 'float-simple':
      return Uint8Array.from(rng.pick([[0xf9, 0x3c, 0x00], [0xfa, 0x7f, 0xc0, 0, 0], [0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0], [0xf7], [0xf0], [0xf8, 0x20], [0xf8, 0x10]]));
    case 'wrong-type':
      return write(
        rng.pick<Node>([
          -1,
          2 ** 32,
          '',
          'x'.repeat(rng.range(1, 300)),
          new Uint8Array(rng.range(0, 80)),
          [],
          [1, 2, 3],
          { kind: 'map', entries: [] },
          null,
          true,
          false,
          { kind: 'tag', tag: 18, value: [] },
        ]),
      );
    case 'random':
      return rng.bytes(rng.range(1, Math.max(1, Math.min(budget, 64))));
  }
}

/** Every node path in `n` (index lists into arrays, map values by entry, map keys as -1 - entry). */
function paths(n: Node, prefix: number[], out: number[][], limit: number): void {
  if (out.length >= limit) return;
  out.push(prefix);
  if (Array.isArray(n)) n.forEach((c, i) => { paths(c, [...prefix, i], out, limit); });
  else if (n !== null && typeof n === 'object' && !(n instanceof Raw) && !(n instanceof Uint8Array)) {
    if (n.kind === 'map') n.entries.forEach(([k, v], i) => {
      paths(k, [...prefix, -1 - i], out, limit);
      paths(v, [...prefix, i], out, limit);
    });
    else paths(n.value, [...prefix, 0], out, limit);
  }
}

function replaceAt(n: Node, path: readonly number[], by: (old: Node) => Node): Node {
  if (path.length === 0) return by(n);
  const [i = 0, ...rest] = path;
  if (Array.isArray(n)) return n.map((c, j) => (j === i ? replaceAt(c, rest, by) : c));
  if (n !== null && typeof n === 'object' && !(n instanceof Raw) && !(n instanceof Uint8Array)) {
    if (n.kind === 'tag') return { kind: 'tag', tag: n.tag, value: replaceAt(n.value, rest, by) };
    const entries = n.entries.map(([k, v], j): [Node, Node] => {
      if (i >= 0 && j === i) return [k, replaceAt(v, rest, by)];
      if (i < 0 && j === -1 - i) return [replaceAt(k, rest, by), v];
      return [k, v];
    });
    return { kind: 'map', entries };
  }
  return n;
}

export const MUTATIONS = ['replace', 'duplicate-entry', 'drop-entry', 'truncate', 'trailing', 'flip', 'splice', 'wrap'] as const;
export type Mutation = (typeof MUTATIONS)[number];

/**
 * A damaged copy of the valid CBOR `valid`, at most about `budget` bytes: one item at a random path
 * replaced by a hostile item, a map entry duplicated or dropped, the encoding truncated, extended,
 * bit-flipped or spliced, or the whole wrapped in nesting. Returns the bytes and what was done.
 */
export function mutateCbor(rng: Rng, valid: Uint8Array, budget: number, maxDepth = 16): { bytes: Uint8Array; how: string } {
  const r = mutateOnce(rng, valid, budget, maxDepth);
  // A mutation that leaves the bytes as they were (two flips of one bit, {} replaced by {}) is no
  // mutation: a trailing byte makes it one.
  if (r.bytes.length === valid.length && r.bytes.every((b, i) => b === valid[i])) return { bytes: concatBytes(r.bytes, Uint8Array.of(0)), how: `${r.how}+trailing` };
  return r;
}

function mutateOnce(rng: Rng, valid: Uint8Array, budget: number, maxDepth: number): { bytes: Uint8Array; how: string } {
  const m = rng.pick(MUTATIONS);
  switch (m) {
    case 'truncate':
      return { bytes: valid.subarray(0, rng.int(valid.length)), how: m };
    case 'trailing':
      return { bytes: concatBytes(valid, rng.bytes(rng.range(1, 8))), how: m };
    case 'flip': {
      const out = Uint8Array.from(valid);
      for (let k = rng.range(1, 3); k > 0; k--) {
        const i = rng.int(out.length);
        out[i] = (out[i] ?? 0) ^ (1 << rng.int(8));
      }
      return { bytes: out, how: m };
    }
    case 'splice': {
      const at = rng.int(valid.length + 1);
      return { bytes: concatBytes(valid.subarray(0, at), hostileItem(rng, 32), valid.subarray(at)), how: m };
    }
    case 'wrap': {
      const depth = rng.range(1, 12);
      return { bytes: concatBytes(new Uint8Array(depth).fill(rng.pick([0x81, 0xd2])), valid), how: m };
    }
    default:
      break;
  }
  const tree = toNode(decodeCbor(valid, { maxDepth }));
  const all: number[][] = [];
  paths(tree, [], all, 512);
  const path = rng.pick(all);
  let how: string = m;
  const out = replaceAt(tree, path, (old) => {
    if (m === 'replace' || old === null || typeof old !== 'object' || old instanceof Raw || old instanceof Uint8Array || Array.isArray(old) || old.kind !== 'map' || old.entries.length === 0) {
      const kind = rng.pick(HOSTILE_ITEM_KINDS);
      how = `replace:${kind}`;
      return new Raw(hostileItem(rng, budget - valid.length, kind));
    }
    const i = rng.int(old.entries.length);
    const entries = [...old.entries];
    if (m === 'duplicate-entry') entries.splice(i, 0, entries[i] as [Node, Node]);
    else entries.splice(i, 1);
    return { kind: 'map', entries };
  });
  return { bytes: write(out), how };
}
