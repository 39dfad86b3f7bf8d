// The history renderings (docs/protocol.md §11): display units of the §2.1.6 worked example, field
// lists, and RFC 4180 CSV whose quoting round-trips through parseCsv for any text.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isProtocolError } from './errors.js';
import type { SohFrame } from './frame-fields.js';
import { alarmNames, frameDisplay, historyCsv, historyJson, historyTable, isoTime, parseCsv, parseFieldList } from './history-format.js';

/** docs/protocol.md §2.1.6, the "typical: 16 cells" vector of test/vectors/frame.json. */
const example: SohFrame = {
  v: 1,
  serial: 'PACK-0001',
  counter: 4711,
  time: 1767225600000,
  soc: 815,
  soh: 962,
  voltage: 52480,
  current: 12500,
  tempMin: 215,
  tempMax: 248,
  cycles: 312,
  cells: [3281, 3280, 3279, 3282, 3280, 3281, 3278, 3280, 3281, 3279, 3280, 3282, 3281, 3280, 3279, 3280],
  remainingCapacity: 96200,
  resistance: 18500,
  alarms: 0,
  firmware: '1.4.2',
};

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    return isProtocolError(e) ? e.code : `not a ProtocolError: ${String(e)}`;
  }
  return undefined;
};

describe('frameDisplay', () => {
  it('shows each wire integer in display units exactly as rounding its decimal would (no float noise)', () => {
    const asDecimal = (n: number, d: number): number => Number((n / 10 ** d).toFixed(d));
    fc.assert(
      fc.property(fc.integer({ min: -2_000_000, max: 2_000_000 }), fc.integer({ min: -550, max: 1500 }), fc.integer({ min: 0, max: 1000 }), (mv, t, pm) => {
        const d = frameDisplay({ ...example, voltage: Math.abs(mv), current: mv, tempMin: t, tempMax: t, soc: pm, soh: pm, cells: [Math.abs(mv) % 6001] });
        expect([d.voltageV, d.currentA, d.tempMinC, d.socPct, d.cellMinV]).toEqual([asDecimal(Math.abs(mv), 3), asDecimal(mv, 3), asDecimal(t, 1), asDecimal(pm, 1), asDecimal(Math.abs(mv) % 6001, 3)]);
      }),
      { numRuns: 20_000, seed: 3 },
    );
  });

  it('converts the §2.1.6 worked example to the §2.1.1 display scale', () => {
    expect(frameDisplay(example)).toEqual({
      counter: 4711,
      deviceTime: '2026-01-01T00:00:00.000Z',
      socPct: 81.5,
      sohPct: 96.2,
      voltageV: 52.48,
      currentA: 12.5,
      cellMinV: 3.278,
      cellMaxV: 3.282,
      cellSpreadMv: 4,
      tempMinC: 21.5,
      tempMaxC: 24.8,
      cycles: 312,
      alarms: 0,
      alarmNames: [],
    });
  });

  it('keeps signs and rounds to the scale: discharging current, sub-zero temperatures', () => {
    const d = frameDisplay({ ...example, current: -1234, tempMin: -55, tempMax: -5, cells: [3000], alarms: 0x88 });
    expect([d.currentA, d.tempMinC, d.tempMaxC, d.cellSpreadMv, d.alarmNames]).toEqual([-1.234, -5.5, -0.5, 0, ['underTemperature', 'deepDischarge']]);
  });

  it('shows a device time beyond what a Date holds instead of throwing', () => {
    expect(frameDisplay({ ...example, time: Number.MAX_SAFE_INTEGER }).deviceTime).toBe('out-of-range:9007199254740991');
  });
});

describe('isoTime / alarmNames', () => {
  it('isoTime gives exactly what Date.toISOString gives, in any order of calls (the per-day shortcut included)', () => {
    const expected = (ms: number): string => {
      const d = new Date(ms);
      return Number.isNaN(d.getTime()) ? `out-of-range:${ms}` : d.toISOString();
    };
    const near = fc.integer({ min: 1_700_000_000_000, max: 1_700_000_000_000 + 3 * 86_400_000 });
    const any = fc.oneof(near, fc.integer({ min: -8.64e15 - 10, max: 8.64e15 + 10 }), fc.constantFrom(0, -1, 86_399_999, 86_400_000, -86_400_000, 253_402_300_799_999, 253_402_300_800_000), fc.double());
    fc.assert(
      fc.property(fc.array(any, { minLength: 1, maxLength: 20 }), (times) => {
        for (const ms of times) expect(isoTime(ms)).toBe(expected(ms));
      }),
      { numRuns: 3000, seed: 4 },
    );
  });

  it('formats ms since the epoch as ISO 8601 UTC with milliseconds', () => {
    expect(isoTime(0)).toBe('1970-01-01T00:00:00.000Z');
    expect(isoTime(1767225600123)).toBe('2026-01-01T00:00:00.123Z');
  });

  it('names every v1 alarm bit, lowest first', () => {
    expect(alarmNames(0x1ff)).toEqual([
      'cellOverVoltage', 'cellUnderVoltage', 'overTemperature', 'underTemperature', 'overCurrentCharge',
      'overCurrentDischarge', 'cellImbalance', 'deepDischarge', 'internalFault',
    ]);
    expect(alarmNames(0x101)).toEqual(['cellOverVoltage', 'internalFault']);
    expect(alarmNames(0)).toEqual([]);
  });
});

describe('parseFieldList', () => {
  const allowed = ['counter', 'socPct', 'alarmNames'] as const;

  it('without a list, returns every allowed field in order', () => {
    expect(parseFieldList(undefined, allowed)).toEqual(['counter', 'socPct', 'alarmNames']);
  });

  it('keeps the caller\'s order and ignores blanks and empty items', () => {
    expect(parseFieldList(' socPct, ,counter,', allowed)).toEqual(['socPct', 'counter']);
  });

  it('when a field is unknown → throws HISTORY_FIELDS naming it and listing the allowed ones', () => {
    expect(code(() => parseFieldList('counter,nope', allowed, '--fields'))).toBe('HISTORY_FIELDS');
    expect(() => parseFieldList('counter,nope', allowed, '--fields')).toThrow('protocol: --fields: unknown field "nope"; expected some of counter,socPct,alarmNames');
  });

  it('when the list names no field → throws HISTORY_FIELDS', () => {
    expect(code(() => parseFieldList(' , ', allowed))).toBe('HISTORY_FIELDS');
  });

  it('does not echo an enormous field name', () => {
    expect(() => parseFieldList('x'.repeat(10_000), allowed)).toThrow(/unknown field "x{40}…"/);
  });
});

interface Row {
  n: number;
  s: string;
  names: string[];
  opt: number | null;
}

const rows: Row[] = [
  { n: 1, s: 'plain', names: [], opt: null },
  { n: -2.5, s: 'comma, "quote"\r\nand line', names: ['a', 'b'], opt: 7 },
];

/** RFC 4180 §2 ABNF (records each ending CRLF): unquoted TEXTDATA has no '"', ',', CR or LF. */
const RFC4180 = /^(?:(?:[^",\r\n]*|"(?:[^"]|"")*")(?:,(?:[^",\r\n]*|"(?:[^"]|"")*"))*\r\n)*$/;

describe('historyCsv', () => {
  it('writes RFC 4180: header line, CRLF after every line, quoted fields with doubled quotes, arrays joined with |', () => {
    expect(historyCsv(rows, ['n', 's', 'names', 'opt'])).toBe(
      'n,s,names,opt\r\n' + '1,plain,,\r\n' + '-2.5,"comma, ""quote""\r\nand line",a|b,7\r\n',
    );
  });

  it('shows only the chosen fields, in the chosen order', () => {
    expect(historyCsv(rows, ['opt', 'n'])).toBe('opt,n\r\n,1\r\n7,-2.5\r\n');
  });

  it('with no rows, is the header line alone', () => {
    expect(historyCsv([], ['n', 's'])).toBe('n,s\r\n');
  });

  it('writes strict RFC 4180 that round-trips any text through parseCsv (property)', () => {
    const text = fc.string({ unit: fc.constantFrom('a', ',', '"', '\r', '\n', ' ', '|', 'é', '😀'), maxLength: 12 });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.array(fc.array(text, { minLength: 4, maxLength: 4 }), { maxLength: 6 }), (width, table) => {
        const fields = ['c0', 'c1', 'c2', 'c3'].slice(0, width) as ('c0' | 'c1' | 'c2' | 'c3')[];
        const objs = table.map((cells) => ({ c0: cells[0]!, c1: cells[1]!, c2: cells[2]!, c3: cells[3]! }));
        const csv = historyCsv(objs, fields);
        expect(csv).toMatch(RFC4180);
        expect(parseCsv(csv)).toEqual([fields, ...objs.map((o) => fields.map((f) => o[f]))]);
      }),
      { numRuns: 500 },
    );
  });
});

describe('historyJson', () => {
  it('writes one object per row with the chosen fields in order, values as they are (arrays stay arrays)', () => {
    expect(historyJson(rows, ['names', 'n', 'opt'])).toBe(
      '[\n  {\n    "names": [],\n    "n": 1,\n    "opt": null\n  },\n  {\n    "names": [\n      "a",\n      "b"\n    ],\n    "n": -2.5,\n    "opt": 7\n  }\n]\n',
    );
  });
});

describe('historyTable', () => {
  it('aligns columns to the widest cell, two spaces apart, trailing blanks trimmed', () => {
    const t = [{ a: 1, bb: 'x', c: null }, { a: 12345, bb: 'yy', c: 3 }];
    expect(historyTable(t, ['a', 'bb', 'c'])).toBe('a      bb  c\n1      x\n12345  yy  3\n');
  });

  it('lets the caller replace a cell\'s text', () => {
    const t: { a: number; c: number | null }[] = [{ a: 1, c: null }];
    expect(historyTable(t, ['a', 'c'], (r, f) => (f === 'c' && r.c === null ? 'pending' : undefined))).toBe('a  c\n1  pending\n');
  });
});

describe('parseCsv', () => {
  it('reads LF line ends and a missing final line end', () => {
    expect(parseCsv('a,b\n1,"x\ny"')).toEqual([['a', 'b'], ['1', 'x\ny']]);
  });

  it('reads empty fields and an empty last field', () => {
    expect(parseCsv(',\r\n"",x,\r\n')).toEqual([['', ''], ['', 'x', '']]);
  });

  it('empty text is no records', () => {
    expect(parseCsv('')).toEqual([]);
  });

  for (const [what, text] of [
    ['an unterminated quoted field', 'a,"b\r\n'],
    ['a quote inside an unquoted field', 'a,b"c\r\n'],
    ['text after a closing quote', 'a,"b"c\r\n'],
  ] as const) {
    it(`when given ${what} → throws HISTORY_CSV`, () => {
      expect(code(() => parseCsv(text))).toBe('HISTORY_CSV');
    });
  }

  it('when the text is over the cap → throws HISTORY_CSV before parsing', () => {
    expect(code(() => parseCsv('a,b\r\n', 4))).toBe('HISTORY_CSV');
  });

  it('fed random text, returns records or throws HISTORY_CSV, nothing else (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', ',', '"', '\r', '\n'), maxLength: 40 }), (s) => {
        const c = code(() => parseCsv(s));
        expect(c === undefined || c === 'HISTORY_CSV').toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});
