// Line mode's parts without packs: the port glob over a real directory of links, serial sources
// over a real registry file, the screen in TTY and log form, and the summary. The whole line with
// hw-sim packs on real ptys is test/provision-line.test.ts.
import { appendFileSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProvisioningError } from './errors.js';
import { expandPortGlob, parseSerialPattern, serialsFromFile, serialsFromPattern } from './line-sources.js';
import { formatSummary, LineScreen, summarise } from './line.js';
import { Registry } from './registry.js';
import type { AttemptOutcome } from './station.js';

let dir: string;
let registry: Registry;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'prov-line-'));
  registry = await Registry.open(join(dir, 'registry.db'));
});
afterEach(async () => {
  await registry.close();
  rmSync(dir, { recursive: true, force: true });
});

function usageOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof ProvisioningError) return e.code;
    throw e;
  }
  return 'no error';
}

/** Makes `serial` hold an active certificate in the registry. */
async function activate(serial: string): Promise<void> {
  const r = await registry.begin({ serial, model: 'M', port: '/dev/x', station: 's', operator: 'o' });
  await registry.update(r.id, { result: 'PASS', certStatus: 'active', certSerialHex: '01' });
}

async function drain(next: () => Promise<string | undefined>, n: number): Promise<(string | undefined)[]> {
  const out: (string | undefined)[] = [];
  for (let i = 0; i < n; i++) out.push(await next());
  return out;
}

describe('expandPortGlob', () => {
  it('matches character devices through links, sorted, skipping files, dangling links and dot files', () => {
    symlinkSync('/dev/null', join(dir, 'b.host'));
    symlinkSync('/dev/zero', join(dir, 'a.host'));
    symlinkSync(join(dir, 'gone'), join(dir, 'c.host'));
    symlinkSync('/dev/null', join(dir, '.hidden.host'));
    writeFileSync(join(dir, 'd.host'), 'not a device');
    symlinkSync('/dev/null', join(dir, 'a.dev'));
    expect(expandPortGlob(join(dir, '*.host'))).toEqual([join(dir, 'a.host'), join(dir, 'b.host')]);
    expect(expandPortGlob(join(dir, '?.dev'))).toEqual([join(dir, 'a.dev')]);
  });

  it('expands wildcards in directory segments and matches nothing under a missing directory', () => {
    expect(expandPortGlob('/dev/nul?')).toEqual(['/dev/null']);
    expect(expandPortGlob('/de*/null')).toEqual(['/dev/null']);
    expect(expandPortGlob(join(dir, 'missing', '*'))).toEqual([]);
  });
});

describe('serialsFromPattern', () => {
  it('counts up from the counter, keeping its width', async () => {
    const src = serialsFromPattern('PK-2026-{0098}', registry, () => undefined);
    expect(await drain(() => src.next(), 3)).toEqual(['PK-2026-0098', 'PK-2026-0099', 'PK-2026-0100']);
  });

  it('skips serials with an active certificate and hands a given-back serial out first', async () => {
    await activate('PK-0002');
    const src = serialsFromPattern('PK-{0001}', registry, () => undefined);
    expect(await drain(() => src.next(), 2)).toEqual(['PK-0001', 'PK-0003']);
    src.giveBack('PK-0001');
    expect(await drain(() => src.next(), 2)).toEqual(['PK-0001', 'PK-0004']);
    expect(src.describe()).toContain('1 skipped');
  });

  describe('when the pattern has no counter, two counters, or makes an invalid serial', () => {
    it('throws USAGE', () => {
      expect(usageOf(() => parseSerialPattern('PK-0001'))).toBe('USAGE');
      expect(usageOf(() => parseSerialPattern('PK-{01}-{01}'))).toBe('USAGE');
      expect(usageOf(() => parseSerialPattern('pk-{0001}'))).toBe('USAGE');
    });
  });
});

describe('serialsFromFile', () => {
  it('hands out lines in order, ignoring blanks, comments and CRs, warning about used and repeated serials', async () => {
    await activate('SC-0002');
    const path = join(dir, 'serials.txt');
    writeFileSync(path, '# shift 1\r\nSC-0001\r\n\r\nSC-0002\nSC-0001\n  SC-0003  \n');
    const warnings: string[] = [];
    const src = serialsFromFile(path, registry, (w) => warnings.push(w));
    expect(await drain(() => src.next(), 3)).toEqual(['SC-0001', 'SC-0003', undefined]);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/SC-0002 skipped: it already has an active certificate/);
    expect(warnings[1]).toMatch(/SC-0001 skipped: it appears twice/);
  });

  it('picks up lines appended after it ran out (a scanner still scanning)', async () => {
    const path = join(dir, 'scan.txt');
    writeFileSync(path, 'SC-0001\n');
    const src = serialsFromFile(path, registry, () => undefined);
    expect(await drain(() => src.next(), 2)).toEqual(['SC-0001', undefined]);
    appendFileSync(path, 'SC-0002\nSC-00');
    expect(await drain(() => src.next(), 2)).toEqual(['SC-0002', undefined]); // a half-written line waits
    expect(src.describe()).toContain('line 3 has no newline yet');
    appendFileSync(path, '03\n');
    expect(await src.next()).toBe('SC-0003');
  });

  describe('when a line is not a pack serial', () => {
    it('throws USAGE naming the line', () => {
      const path = join(dir, 'bad.txt');
      writeFileSync(path, 'SC-0001\nsc 0002\n');
      const err = (() => {
        try {
          serialsFromFile(path, registry, () => undefined);
        } catch (e) {
          return e as ProvisioningError;
        }
        return undefined;
      })();
      expect(err?.code).toBe('USAGE');
      expect(err?.message).toContain('line 2');
    });
  });

  describe('when the file does not exist', () => {
    it('throws USAGE', () => {
      expect(usageOf(() => serialsFromFile(join(dir, 'none.txt'), registry, () => undefined))).toBe('USAGE');
    });
  });
});

function outcome(port: string, serial: string, result: 'PASS' | 'FAIL', durationMs: number): AttemptOutcome {
  const code = result === 'FAIL' ? ('DEVICE_LOST' as const) : undefined;
  return {
    result, serial, port, durationMs, label: result === 'PASS' ? `PASS  ${serial}  ES256  key 0000-0000-0000-0000  cert 01` : `FAIL ${serial} DEVICE_LOST: unplugged`,
    record: { id: 'x', serial, model: '', port, station: 's', operator: 'o', startedAt: '', result, certStatus: 'none' },
    exitCode: result === 'PASS' ? 0 : 18, ...(code ? { code } : {}),
  };
}

describe('LineScreen', () => {
  it('writes one timestamped line per change when the output is not a terminal', () => {
    let text = '';
    const screen = new LineScreen({ write: (t: string) => (text += t) }, () => Date.parse('2026-03-01T08:00:00.250Z'));
    screen.set('/dev/ttyUSB0', { kind: 'running', serial: 'PK-1', step: 'keygen' });
    screen.set('/dev/ttyUSB0', { kind: 'done', outcome: outcome('/dev/ttyUSB0', 'PK-1', 'PASS', 412) });
    expect(text).toBe('08:00:00.250  ttyUSB0  PK-1  generating key on the pack...\n08:00:00.250  ttyUSB0  PASS  PK-1  ES256  key 0000-0000-0000-0000  cert 01  (0.41 s)  unplug the pack\n');
    expect(text).not.toContain('\x1b');
  });

  it('redraws one line per port in place on a terminal, with messages above the block', () => {
    let text = '';
    const screen = new LineScreen({ write: (t: string) => (text += t), isTTY: true });
    screen.set('/dev/ttyUSB0', { kind: 'running', serial: 'PK-1', step: 'open' });
    screen.set('/dev/ttyUSB1', { kind: 'running', serial: 'PK-2', step: 'open' });
    screen.message('a warning');
    const last = text.lastIndexOf('\x1b[2A\x1b[J');
    expect(last).toBeGreaterThan(0); // the two-line block was erased before the message
    expect(text.slice(last)).toBe('\x1b[2A\x1b[Ja warning\nttyUSB0  PK-1  opening port...\nttyUSB1  PK-2  opening port...\n');
  });

  it('cuts live lines to the terminal width, and leaves the block in place under the final summary', () => {
    let text = '';
    const screen = new LineScreen({ write: (t: string) => (text += t), isTTY: true, columns: 30 });
    screen.set('/dev/ttyUSB0', { kind: 'running', serial: 'PK-1', step: 'keygen' });
    expect(text).toBe('ttyUSB0  PK-1  generating ke…\n'); // 29 columns: the cursor never wraps
    screen.final('summary: 1 pack');
    expect(text.endsWith('…\nsummary: 1 pack\n')).toBe(true); // no erase before the summary
  });
});

describe('summarise', () => {
  it('counts passes and failures by code, mean and max time, and exit 3 when any failed', () => {
    const s = summarise([outcome('a', 'PK-1', 'PASS', 400), outcome('b', 'PK-2', 'FAIL', 1000), outcome('c', 'PK-3', 'PASS', 700)]);
    expect(s).toMatchObject({ attempts: 3, passed: 2, failed: { DEVICE_LOST: 1 }, meanMs: 700, maxMs: 1000, exitCode: 3 });
    expect(formatSummary(s)).toBe('summary: 3 packs, 2 PASS, 1 FAIL (DEVICE_LOST 1)\ntime per pack: mean 0.70 s, max 1.00 s');
    expect(summarise([outcome('a', 'PK-1', 'PASS', 400)]).exitCode).toBe(0);
  });
});
