/**
 * The hostile-input suite, shortened (issue 8 item 3; `npm run hostile` runs 1,000,000 inputs):
 * 20,000 hostile serial lines, BLE notifications and security cases from the same generators,
 * through the real transport input, pipeline, verification workers and log store, with genuine
 * frames interleaved. Fails on any crash or stall, any forgery in the log, any genuine frame not
 * stored exactly once, any security case without its code, heap growth beyond the bound, a log
 * that `gateway verify` does not pass, or a tampered copy of it that verify does not pinpoint.
 * The ledger side: gateway impersonation, 400 fuzzed upload bodies and headers, a fork and
 * tampered uploads against a real Ledger on its embedded store. And one race the 1 M run does not
 * make: the ES256 high-S twin of a frame reaching the gateway before the frame itself.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { okResponse } from '../protocol/index.js';
import { IngestPipeline, MemoryTransport, type MemoryDevice } from '../gateway/index.js';
import { MemoryLog, TestFactory } from '../gateway/ingest/ingest-testkit.js';
import { HostilePack } from './hostile/packs.js';
import { runLedgerHostile, type LedgerFigures } from './hostile/ledger.js';
import { checkFigures, checkLedger, checkTamper, formatFigures, formatLedger } from './hostile/report.js';
import { runHostile, type HostileFigures } from './hostile/run.js';

describe('hostile inputs (20 k, seed 8)', () => {
  let figures: HostileFigures;

  it('feeds 20,000 hostile inputs without a crash, a stall or an accepted forgery, and keeps taking genuine frames', { timeout: 300_000 }, async () => {
    figures = await runHostile({ count: 20_000, seed: 8, workers: 2 });
    expect(checkFigures(figures, { maxHeapGrowthMiB: 32 }), formatFigures(figures)).toEqual([]);
    expect(figures.crashes.total).toBe(0);
    expect(figures.forgeriesAccepted).toBe(0);
    expect(figures.genuine.stored).toBe(figures.genuine.sent);
    expect(figures.genuine.sent).toBeGreaterThanOrEqual(1000);
  });

  it('exercised every layer: line, BLE chunk, CBOR, COSE, frame, hello, chain and dedupe rejects were all counted', () => {
    const r = figures.rejects;
    const t = figures.transportRejects;
    for (const code of ['LINE_GARBAGE', 'LINE_CRC', 'LINE_TOO_LONG', 'LINE_ENCODING', 'MSG_TYPE', 'MSG_TOO_LARGE', 'MSG_MALFORMED']) expect(t[code] ?? 0, code).toBeGreaterThan(0);
    for (const code of ['BLE_CHUNK', 'BLE_SEQUENCE', 'BLE_LENGTH', 'BLE_CRC', 'BLE_TIMEOUT']) expect(t[code] ?? 0, code).toBeGreaterThan(0);
    for (const code of ['CBOR_TOO_DEEP', 'CBOR_NON_MINIMAL', 'CBOR_INDEFINITE_LENGTH', 'CBOR_MAP_KEY', 'CBOR_INVALID_UTF8', 'CBOR_TOO_LARGE', 'CBOR_TRUNCATED']) {
      expect((r[code] ?? 0) + (t[code] ?? 0), code).toBeGreaterThan(0);
    }
    for (const code of ['COSE_HEADER', 'COSE_SIGNATURE', 'COSE_KID_MISMATCH', 'COSE_ALG_MISMATCH', 'FRAME_SERIAL_MISMATCH', 'COUNTER_REPLAY', 'NO_SESSION', 'RATE_LIMITED']) expect(r[code] ?? 0, code).toBeGreaterThan(0);
    for (const code of ['CHAIN_UNTRUSTED', 'CERT_REVOKED', 'HELLO_KEY_MISMATCH', 'HELLO_SERIAL_MISMATCH', 'DEVICE_UNPROVISIONED']) expect(r[code] ?? 0, code).toBeGreaterThan(0);
    expect(figures.duplicates).toBeGreaterThan(0);
  });

  it('gateway verify pinpoints a tampered copy of the log by index, and no other entry (record CRC broken; frame changed with the CRC recomputed)', () => {
    expect(checkTamper(figures)).toEqual([]);
    expect(figures.log.tamper[0]?.codes).toContain('STORE_CORRUPT');
    expect(figures.log.tamper[1]?.codes).toContain('LEAF_HASH');
  });
});

describe('hostile requests at the ledger (seed 8)', () => {
  let l: LedgerFigures;

  it('refuses impersonation, forks and tampered uploads with their codes and survives 400 fuzzed bodies and headers; accepted state and history unchanged', { timeout: 300_000 }, async () => {
    const t = performance.now();
    l = await runLedgerHostile({ seed: 8, bodies: 400, headers: 400 });
    expect(checkLedger(l), formatLedger(l, (performance.now() - t) / 1000)).toEqual([]);
    expect(l.cases.length).toBeGreaterThanOrEqual(12);
    expect(l.fuzz.byCode['UPLOAD_MALFORMED'] ?? 0).toBeGreaterThan(0);
    expect(l.evidence).toBeGreaterThan(0);
  });
});

describe('ES256 signature malleability (docs/security.md "Known limits")', () => {
  it('a high-S twin sent from another link before the genuine frame does not lock the pack out: its own copy is acknowledged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hostile-twin-'));
    const factory = await TestFactory.create();
    const pack = await HostilePack.create(factory, 'PK-TWIN-0001', 'ES256');
    const log = new MemoryLog();
    const pipeline = await IngestPipeline.open({ log, trust: await factory.trust(), stateDir: dir, verify: { workers: 0 } });
    const transport = new MemoryTransport();
    try {
      await transport.start(pipeline.events);
      // Both links say the pack's (public) hello: the attacker copied it.
      const link = (name: string): MemoryDevice => {
        const d = transport.device(name);
        d.onReceive((m) => {
          if (m.type === 'request' && m.op === 'hello') {
            const { type: _t, ...hello } = pack.hello(1, 1);
            d.send(okResponse(m.id, { op: 'hello', hello }));
          }
        });
        d.plug();
        return d;
      };
      const own = link('pack');
      const attacker = link('attacker');
      await expect.poll(() => pipeline.status().sessions.filter((s) => s.state === 'verified').length).toBe(2);
      const cose = pack.frame(0);
      attacker.send({ type: 'frame', cose: HostilePack.highSTwin(cose) }); // seen in transit, re-encoded, sent first
      await expect.poll(() => log.size).toBe(1);
      own.send({ type: 'frame', cose });
      await expect.poll(() => pipeline.rejects('COUNTER_REPLAY') + pipeline.status().duplicates).toBe(1);
      const acked = (): boolean => own.received.some((m) => m.type === 'ack' && m.ranges.some(([lo, hi]) => lo <= 0 && 0 <= hi));
      await expect.poll(acked, { timeout: 2000, message: "the pack's own frame 0 is acknowledged (today: refused COUNTER_REPLAY, never acked, resent forever)" }).toBe(true);
    } finally {
      await transport.stop();
      await pipeline.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
