import { describe, expect, it } from 'vitest';
import { MAX_DETAIL, MAX_PREVIEW_BYTES, Quarantine } from './quarantine.js';

describe('Quarantine', () => {
  it('counts rejects by code and flags security codes', () => {
    const q = new Quarantine({ now: () => 5 });
    q.record({ code: 'COSE_SIGNATURE', channel: 'serial:/dev/ttyUSB0', detail: 'forged' });
    q.record({ code: 'LINE_CRC', channel: 'serial:/dev/ttyUSB0', detail: 'noise' });
    q.record({ code: 'LINE_CRC', channel: 'serial:/dev/ttyUSB1', detail: 'noise' });
    expect(q.status()).toMatchObject({ total: 3, security: 1, byCode: { COSE_SIGNATURE: 1, LINE_CRC: 2 } });
    expect(q.count('LINE_CRC')).toBe(2);
  });

  it('when more rejects arrive than samples are kept › keeps the newest, oldest first', () => {
    const q = new Quarantine({ samples: 3 });
    for (let i = 0; i < 10; i++) q.record({ code: 'NO_SESSION', channel: `c${i}`, detail: '' });
    expect(q.status().recent.map((s) => s.channel)).toEqual(['c7', 'c8', 'c9']);
    expect(q.status().total).toBe(10);
  });

  it('when a device sends long or hostile text and bytes › caps detail and preview and strips control characters', () => {
    const q = new Quarantine();
    q.record({ code: 'DEVICE_NOTICE', channel: 'x', detail: `\u001b[31mred${'a'.repeat(1000)}`, raw: new Uint8Array(5000).fill(0xab) });
    const s = q.status().recent[0];
    expect(s?.detail.length).toBe(MAX_DETAIL);
    expect(s?.detail.startsWith('?[31mred')).toBe(true);
    expect(s?.preview).toBe(`${'ab'.repeat(MAX_PREVIEW_BYTES)}…`);
  });

  it('when codes are malformed or unbounded in number › counts them under OTHER instead of growing', () => {
    const q = new Quarantine();
    q.record({ code: 'not a code', channel: 'x', detail: '' });
    for (let i = 0; i < 300; i++) q.record({ code: `C${i}`, channel: 'x', detail: '' });
    const codes = Object.keys(q.status().byCode);
    expect(codes.length).toBeLessThanOrEqual(257);
    expect(q.count('OTHER')).toBeGreaterThanOrEqual(1 + 300 - 255);
  });

  it('when configured with a sample count out of range › throws RangeError', () => {
    expect(() => new Quarantine({ samples: 0 })).toThrow(RangeError);
  });
});
