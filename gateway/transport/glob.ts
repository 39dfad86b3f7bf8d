/**
 * Serial port patterns such as `/dev/ttyUSB*` or `/dev/serial/by-id/usb-FTDI_*-if00-port0`: a small
 * glob matcher (no new dependency) and its expansion by reading directories, which the serial
 * transport repeats every poll to see adapters plugged in and out. Supported, within one path
 * segment: `*` (any run of characters), `?` (one character), `[abc]`, `[a-z]`, `[!a-z]` / `[^a-z]`,
 * and `\` to escape the next character. Wildcards never cross a `/` and, as in sh, never match a
 * leading `.` unless the pattern segment starts with one. There is no `**` and no brace expansion.
 */
import { readdir, stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';

/** Whether `pattern` has an unescaped `*`, `?` or `[`. */
export function hasMagic(pattern: string): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') i++;
    else if (c === '*' || c === '?' || c === '[') return true;
  }
  return false;
}

const REGEX_SPECIAL = /[.*+?^${}()|[\]\\/]/;

function esc(c: string): string {
  return REGEX_SPECIAL.test(c) ? `\\${c}` : c;
}

/** The body of a `[...]` class starting after the `[` at `start`, or undefined if it never closes. */
function charClass(seg: string, start: number): { regex: string; end: number } | undefined {
  let i = start;
  let negate = false;
  if (seg[i] === '!' || seg[i] === '^') {
    negate = true;
    i++;
  }
  let body = '';
  let first = true;
  for (; i < seg.length; i++) {
    let c = seg.charAt(i);
    if (c === ']' && !first) return { regex: `[${negate ? '^' : ''}${body}]`, end: i };
    first = false;
    if (c === '\\' && i + 1 < seg.length) c = seg.charAt(++i);
    const isRange = seg[i + 1] === '-' && i + 2 < seg.length && seg[i + 2] !== ']';
    body += /[\\\]^[-]/.test(c) ? `\\${c}` : c;
    if (isRange) {
      let hi = seg.charAt(i + 2);
      i += 2;
      if (hi === '\\' && i + 1 < seg.length) hi = seg.charAt(++i);
      body += `-${/[\\\]^[-]/.test(hi) ? `\\${hi}` : hi}`;
    }
  }
  return undefined;
}

/**
 * Compiles one path segment (no `/`) to an anchored RegExp. An unterminated `[` is a literal `[`.
 * A segment that does not start with `.` never matches a name starting with `.`.
 */
export function segmentRegExp(seg: string): RegExp {
  let re = '';
  for (let i = 0; i < seg.length; i++) {
    const c = seg.charAt(i);
    if (c === '\\' && i + 1 < seg.length) re += esc(seg.charAt(++i));
    else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const cls = charClass(seg, i + 1);
      if (cls) {
        re += cls.regex;
        i = cls.end;
      } else re += '\\[';
    } else re += esc(c);
  }
  const hidden = seg.startsWith('.') ? '' : '(?!\\.)';
  return new RegExp(`^${hidden}${re}$`, 'u');
}

/** Removes escapes from a segment without magic. */
function literal(seg: string): string {
  return seg.replace(/\\(.)/gu, '$1');
}

/** Whether absolute `path` matches `pattern` segment by segment (both resolved against the cwd). */
export function matchGlob(pattern: string, path: string): boolean {
  const ps = absolute(pattern).split('/');
  const xs = absolute(path).split('/');
  if (ps.length !== xs.length) return false;
  return ps.every((seg, i) => {
    const x = xs[i] ?? '';
    return hasMagic(seg) ? segmentRegExp(seg).test(x) : literal(seg) === x;
  });
}

function absolute(p: string): string {
  return isAbsolute(p) ? p : resolve(p);
}

/**
 * Every existing path matching `pattern`, sorted. Directories that cannot be read are skipped, as
 * are entries that do not resolve (dangling symlinks — e.g. a pty link left by a killed socat).
 * Never throws for file system errors.
 */
export async function expandGlob(pattern: string): Promise<string[]> {
  const segs = absolute(pattern).split('/').slice(1);
  let candidates = [''];
  for (const seg of segs) {
    if (seg === '') continue; // '//' or a trailing '/'
    if (!hasMagic(seg)) {
      const name = literal(seg);
      candidates = candidates.map((c) => `${c}/${name}`);
      continue;
    }
    const re = segmentRegExp(seg);
    const next: string[] = [];
    for (const dir of candidates) {
      let names: string[];
      try {
        names = await readdir(dir === '' ? '/' : dir);
      } catch {
        continue;
      }
      for (const n of names) if (re.test(n)) next.push(`${dir}/${n}`);
    }
    candidates = next;
  }
  const out: string[] = [];
  for (const c of candidates) {
    try {
      await stat(c);
      out.push(c);
    } catch {
      // absent or dangling
    }
  }
  return out.sort();
}
