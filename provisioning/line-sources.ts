/**
 * Line mode's inputs (issue 5 item 4; docs/provisioning.md "Line mode"): which ports exist now (a
 * small glob for `*` and `?`, since fs.glob needs Node 22 and a dependency for two wildcards is not
 * worth it), and where pack serials come from — a scanner file (one serial per line, consumed in
 * order, re-read when exhausted so a barcode scanner can keep appending) or a pattern with a
 * `{0001}` counter. Both skip serials that already hold an active certificate in the registry, and
 * take back the serial of a failed attempt so the next pack gets it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { ProvisioningError } from './errors.js';
import type { Registry } from './registry.js';
import { checkPackSerial } from './station.js';

function usage(message: string, cause?: unknown): never {
  throw new ProvisioningError('USAGE', `provisioning: ${message}`, cause === undefined ? undefined : { cause });
}

/** A glob segment as a regular expression: `*` any run, `?` one character, not matching a leading dot. */
function segmentRegex(seg: string): RegExp {
  const body = seg.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^(?!\\.)${body}$`);
}

const wild = (seg: string): boolean => /[*?]/.test(seg);

/**
 * The character devices (ttys, pty links, /dev/serial/by-id links) whose paths match `pattern`,
 * as absolute paths, sorted. `*` and `?` may appear in any segment (a relative pattern is taken from
 * the working directory); links are followed, dangling ones skipped (an unplugged adapter's
 * leftover link). Unreadable directories match nothing. Never throws.
 */
export function expandPortGlob(pattern: string): string[] {
  let bases: string[] = [sep];
  for (const seg of resolve(pattern).split(sep)) {
    if (seg === '') continue;
    const next: string[] = [];
    for (const base of bases) {
      if (!wild(seg)) {
        next.push(join(base, seg));
        continue;
      }
      let names: string[];
      try {
        names = readdirSync(base);
      } catch {
        continue; // unreadable or gone: matches nothing
      }
      const re = segmentRegex(seg);
      for (const n of names) if (re.test(n)) next.push(join(base, n));
    }
    bases = next;
  }
  return bases
    .filter((p) => {
      try {
        return statSync(p).isCharacterDevice();
      } catch {
        return false;
      }
    })
    .sort();
}

/** Where line mode takes pack serials from. */
export interface SerialSource {
  /** A short description for the screen ("scanner file serials.txt, line 4"). */
  describe(): string;
  /** The next free serial, or undefined when none is available now (file exhausted). Throws REGISTRY / USAGE. */
  next(): Promise<string | undefined>;
  /** Gives back the serial of a failed attempt: it is handed out again first. */
  giveBack(serial: string): void;
}

/** Hands out serials at most once at a time; shared by both sources. */
abstract class BaseSource implements SerialSource {
  /** Serials passed over because they hold an active certificate. */
  skipped = 0;
  private readonly returned: string[] = [];
  private readonly handedOut = new Set<string>();

  constructor(
    protected readonly registry: Registry,
    protected readonly warn: (message: string) => void,
    /** Warn about each serial skipped (a scanner file: each is a label in someone's hand). */
    private readonly warnEachSkip: boolean,
  ) {}

  abstract describe(): string;
  /** The next candidate of the underlying sequence, or undefined. */
  protected abstract candidate(): string | undefined;

  async next(): Promise<string | undefined> {
    for (;;) {
      const s = this.returned.shift() ?? this.candidate();
      if (s === undefined) return undefined;
      if (this.handedOut.has(s)) continue;
      const holder = await this.registry.activeBySerial(s);
      if (holder !== undefined) {
        this.skipped++;
        if (this.warnEachSkip) this.warn(`serial ${s} skipped: it already has an active certificate (attempt ${holder.id}, ${holder.finishedAt ?? holder.startedAt})`);
        continue;
      }
      this.handedOut.add(s);
      return s;
    }
  }

  giveBack(serial: string): void {
    if (!this.handedOut.delete(serial)) return;
    this.returned.push(serial);
  }
}

/**
 * Serials from a scanner file: one per line, each ending in a newline (an unterminated last line
 * may be half-written and waits); blank lines and `#` comments ignored; surrounding whitespace (a
 * scanner's CR) trimmed. Consumed in file order; when the end is reached the file is
 * read again, so lines appended meanwhile are picked up. Throws USAGE when the file cannot be read
 * or a line is not a valid pack serial (naming the line), now or on a later read.
 */
export function serialsFromFile(path: string, registry: Registry, warn: (message: string) => void): SerialSource {
  /** Complete lines only: a last line without its newline may still be being written by the scanner. */
  let partial = '';
  const read = (): string[] => {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      return usage(`serials file ${path}: unreadable (${(e as NodeJS.ErrnoException).code ?? 'error'})`, e);
    }
    const all = text.split('\n');
    partial = (all.pop() ?? '').trim();
    return all.map((line, i) => {
      const s = line.trim();
      if (s === '' || s.startsWith('#')) return '';
      try {
        checkPackSerial(s);
      } catch (e) {
        return usage(`serials file ${path} line ${i + 1}: "${s.slice(0, 40)}" is not a pack serial (expected A-Z 0-9 -, 1..32 characters)`, e);
      }
      return s;
    });
  };
  let lines = read();
  let at = 0;
  const seen = new Set<string>();
  return new (class extends BaseSource {
    describe(): string {
      const tail = partial === '' ? '' : ` (line ${lines.length + 1} has no newline yet)`;
      return `scanner file ${path}, line ${at + 1}${tail}`;
    }
    protected candidate(): string | undefined {
      for (let reread = false; ; ) {
        while (at < lines.length) {
          const s = lines[at++] ?? '';
          if (s === '') continue;
          if (seen.has(s)) {
            this.warn(`serial ${s} skipped: it appears twice in ${path} (line ${at})`);
            continue;
          }
          seen.add(s);
          return s;
        }
        if (reread) return undefined;
        lines = read();
        reread = true;
      }
    }
  })(registry, warn, true);
}

/** A parsed serial pattern: prefix, counter start and width, suffix. */
export interface SerialPattern {
  readonly prefix: string;
  readonly start: number;
  readonly width: number;
  readonly suffix: string;
}

/**
 * Parses `PK-2026-{0001}`: exactly one `{digits}` counter (its width is kept, zero-padded). Throws
 * USAGE for no or several counters, or a first serial that is not a valid pack serial.
 */
export function parseSerialPattern(pattern: string): SerialPattern {
  const m = /^([^{}]*)\{(\d{1,12})\}([^{}]*)$/.exec(pattern);
  if (m === null) usage(`serial pattern "${pattern}": expected exactly one {digits} counter, e.g. PK-2026-{0001}`);
  const [, prefix = '', digits = '', suffix = ''] = m;
  const p = { prefix, start: Number(digits), width: digits.length, suffix };
  checkPackSerial(formatSerial(p, p.start));
  return p;
}

export function formatSerial(p: SerialPattern, n: number): string {
  return `${p.prefix}${String(n).padStart(p.width, '0')}${p.suffix}`;
}

/**
 * Serials from a pattern: the counter counts up from its start, skipping serials that hold an
 * active certificate. When the counter outgrows its width the serial simply gets longer; one that
 * no longer fits a pack serial ends the sequence. Throws USAGE for a bad pattern.
 */
export function serialsFromPattern(pattern: string, registry: Registry, warn: (message: string) => void): SerialSource {
  const p = parseSerialPattern(pattern);
  let n = p.start;
  return new (class extends BaseSource {
    describe(): string {
      const skipped = this.skipped > 0 ? `, ${this.skipped} skipped as already certified` : '';
      return `pattern ${pattern}, next ${formatSerial(p, n)}${skipped}`;
    }
    protected candidate(): string | undefined {
      const s = formatSerial(p, n);
      try {
        checkPackSerial(s);
      } catch {
        return undefined;
      }
      n++;
      return s;
    }
  })(registry, warn, false);
}
