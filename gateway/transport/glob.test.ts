/**
 * The port-pattern matcher (glob.ts): what `*`, `?` and classes match within a segment, the rules
 * an operator relies on (no slash crossing, no hidden names), and expansion against a real
 * directory tree with symlinks, dangling links and unreadable paths.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { expandGlob, hasMagic, matchGlob, segmentRegExp } from './glob.js';

describe('hasMagic', () => {
  it('sees unescaped *, ? and [ only', () => {
    expect(['/dev/ttyUSB*', '/dev/tty?', '/dev/tty[0-9]'].map(hasMagic)).toEqual([true, true, true]);
    expect(['/dev/ttyUSB0', '/dev/tty\\*', '/dev/serial/by-id/usb-FTDI_FT232R-if00-port0'].map(hasMagic)).toEqual([false, false, false]);
  });
});

describe('segmentRegExp', () => {
  const m = (seg: string, name: string): boolean => segmentRegExp(seg).test(name);

  it('matches * as any run and ? as one character, never crossing a slash', () => {
    expect(m('ttyUSB*', 'ttyUSB0')).toBe(true);
    expect(m('ttyUSB*', 'ttyUSB')).toBe(true);
    expect(m('ttyUSB*', 'ttyACM0')).toBe(false);
    expect(m('tty?', 'ttyS')).toBe(true);
    expect(m('tty?', 'ttyS0')).toBe(false);
    expect(m('*', 'a/b')).toBe(false);
  });

  it('supports classes, ranges and negation with ! or ^', () => {
    expect(['ttyS0', 'ttyS5', 'ttyS9', 'ttySa'].map((n) => m('ttyS[0-5]', n))).toEqual([true, true, false, false]);
    expect(['ttyS0', 'ttyS7'].map((n) => m('ttyS[!0-5]', n))).toEqual([false, true]);
    expect(['ttyS0', 'ttyS7'].map((n) => m('ttyS[^0-5]', n))).toEqual([false, true]);
    expect(m('x[]]', 'x]')).toBe(true); // a ] first in the class is a member
    expect(m('x[a-]', 'x-')).toBe(true); // a trailing - is a member
  });

  it('treats regex characters, escapes and an unterminated [ literally', () => {
    expect(m('a.b', 'a.b')).toBe(true);
    expect(m('a.b', 'axb')).toBe(false);
    expect(m('(x)+', '(x)+')).toBe(true);
    expect(m('a\\*', 'a*')).toBe(true);
    expect(m('a\\*', 'ab')).toBe(false);
    expect(m('tty[', 'tty[')).toBe(true);
  });

  it('never matches a leading dot unless the pattern starts with one', () => {
    expect(m('*', '.hidden')).toBe(false);
    expect(m('?hidden', '.hidden')).toBe(false);
    expect(m('.*', '.hidden')).toBe(true);
  });
});

describe('matchGlob', () => {
  it('compares segment by segment', () => {
    expect(matchGlob('/dev/serial/by-id/usb-*-port0', '/dev/serial/by-id/usb-FTDI_A50285BI-if00-port0')).toBe(true);
    expect(matchGlob('/dev/*/ttyUSB0', '/dev/a/b/ttyUSB0')).toBe(false);
    expect(matchGlob('/dev/ttyUSB*', '/dev/ttyUSB10')).toBe(true);
  });
});

describe('expandGlob', () => {
  const root = mkdtempSync(join(tmpdir(), 'gw-glob-'));
  mkdirSync(join(root, 'by-id'));
  mkdirSync(join(root, 'a'));
  mkdirSync(join(root, 'b'));
  for (const f of ['ttyUSB0', 'ttyUSB1', 'ttyACM0', '.ttyUSB9', 'a/tty1', 'b/tty2']) writeFileSync(join(root, f), '');
  symlinkSync(join(root, 'ttyUSB1'), join(root, 'by-id', 'usb-FTDI_X-port0'));
  symlinkSync(join(root, 'gone'), join(root, 'by-id', 'usb-FTDI_Y-port0'));
  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it('lists the existing matches, sorted, without hidden names', async () => {
    expect(await expandGlob(join(root, 'ttyUSB*'))).toEqual([join(root, 'ttyUSB0'), join(root, 'ttyUSB1')]);
  });

  it('expands wildcards in directory segments', async () => {
    expect(await expandGlob(join(root, '?', 'tty*'))).toEqual([join(root, 'a', 'tty1'), join(root, 'b', 'tty2')]);
  });

  it('keeps symlinks that resolve and drops dangling ones', async () => {
    expect(await expandGlob(join(root, 'by-id', 'usb-FTDI_*-port0'))).toEqual([join(root, 'by-id', 'usb-FTDI_X-port0')]);
  });

  it('returns nothing for a directory that does not exist, and never throws', async () => {
    expect(await expandGlob(join(root, 'nope', '*'))).toEqual([]);
    expect(await expandGlob(join(root, 'ttyUSB0', '*'))).toEqual([]); // a file used as a directory
  });
});
