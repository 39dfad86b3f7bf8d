import { register as globalRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { GatewayMetrics, LatencyHistogram } from './metrics.js';
import { metricTypes, NOW, parsePrometheus, sampleSnapshot } from './ops-testkit.js';
import type { StatusSnapshot } from './snapshot.js';

const P = 'packchain_gateway_';

describe('GatewayMetrics', () => {
  describe('when rendering a snapshot', () => {
    it('exposes the values of the snapshot under their metric names and labels', async () => {
      const text = await new GatewayMetrics({ processMetrics: false }).render(sampleSnapshot());
      const m = parsePrometheus(text);
      const expected: Record<string, number> = {
        [`${P}info{name="line-3-gw1",origin="packchain.gateway/line-3-gw1",version="0.1.0"}`]: 1,
        [`${P}healthy`]: 1,
        [`${P}log_entries`]: 12_345,
        [`${P}log_disk_bytes`]: 5 * 2 ** 20,
        [`${P}log_quota_bytes`]: 8 * 2 ** 30,
        [`${P}log_commits_total`]: 321,
        [`${P}checkpoint_size`]: 12_000,
        [`${P}checkpoint_age_seconds`]: 4,
        [`${P}checkpoint_timestamp_seconds`]: (NOW - 4000) / 1000,
        [`${P}frames_stored_total`]: 12_345,
        [`${P}frames_duplicate_total`]: 7,
        [`${P}frames_rejected_total{code="LINE_CRC"}`]: 3,
        [`${P}frames_rejected_total{code="COSE_SIGNATURE"}`]: 1,
        [`${P}frames_rejected_security_total`]: 1,
        [`${P}frames_in_flight`]: 2,
        [`${P}input_held`]: 1,
        [`${P}input_holds_total`]: 5,
        [`${P}missing_counters`]: 3,
        [`${P}gap_ranges`]: 1,
        [`${P}devices`]: 2,
        [`${P}device_frames_stored_total{serial="PACK-0001"}`]: 10_000,
        [`${P}device_missing_counters{serial="PACK-0001"}`]: 3,
        [`${P}device_last_seen_timestamp_seconds{serial="PACK-0002"}`]: (NOW - 1000) / 1000,
        [`${P}transport_channels_open{transport="serial"}`]: 1,
        [`${P}transport_channels_open{transport="ble"}`]: 1,
        [`${P}transport_endpoints{state="absent",transport="serial"}`]: 1,
        [`${P}transport_reconnects_total{transport="serial"}`]: 2,
        [`${P}transport_received_bytes_total{transport="serial"}`]: 200_000,
        [`${P}transport_sent_bytes_total{transport="ble"}`]: 300,
        [`${P}transport_rejects_total{code="LINE_CRC",transport="serial"}`]: 3,
        [`${P}sync_lag_entries`]: 345,
        [`${P}sync_lag_seconds`]: 90,
        [`${P}sync_synced_entries`]: 12_000,
        [`${P}mqtt_connected`]: 1,
        [`${P}mqtt_dropped_total{reason="offline"}`]: 4,
        [`${P}commit_latency_seconds_bucket{le="0.005"}`]: 3,
        [`${P}commit_latency_seconds_bucket{le="0.02"}`]: 4,
        [`${P}commit_latency_seconds_bucket{le="+Inf"}`]: 5,
        [`${P}commit_latency_seconds_count`]: 5,
      };
      for (const [k, v] of Object.entries(expected)) expect([k, m.get(k)]).toEqual([k, v]);
      expect(m.get(`${P}commit_latency_seconds_sum`)).toBeCloseTo(0.323, 9);
      const types = metricTypes(text);
      expect(types.get(`${P}commit_latency_seconds`)).toBe('histogram');
      expect(types.get(`${P}frames_stored_total`)).toBe('counter');
      expect(types.get(`${P}log_entries`)).toBe('gauge');
    });

    it('renders the same snapshot twice to the same values (nothing is counted here)', async () => {
      const metrics = new GatewayMetrics({ processMetrics: false });
      const s = sampleSnapshot();
      const a = parsePrometheus(await metrics.render(s));
      const b = parsePrometheus(await metrics.render(s));
      expect(b).toEqual(a);
    });

    it('follows the snapshot: new totals replace old ones and series of vanished labels disappear', async () => {
      const metrics = new GatewayMetrics({ processMetrics: false });
      await metrics.render(sampleSnapshot());
      const s = sampleSnapshot();
      const later: StatusSnapshot = { ...s, ingest: { ...s.ingest, stored: 20_000, devices: s.ingest.devices.slice(1), quarantine: { total: 5, security: 1, byCode: { LINE_CRC: 5 } } } };
      const m = parsePrometheus(await metrics.render(later));
      expect(m.get(`${P}frames_stored_total`)).toBe(20_000);
      expect(m.get(`${P}frames_rejected_total{code="LINE_CRC"}`)).toBe(5);
      expect(m.has(`${P}frames_rejected_total{code="COSE_SIGNATURE"}`)).toBe(false);
      expect(m.has(`${P}device_frames_stored_total{serial="PACK-0001"}`)).toBe(false);
    });

    it('when unhealthy or without a checkpoint › reports healthy 0 and leaves the checkpoint series out', async () => {
      const s = sampleSnapshot();
      const { checkpoint: _c, commitLatency: _l, ...store } = s.store;
      const m = parsePrometheus(await new GatewayMetrics({ processMetrics: false }).render({ ...s, store: { ...store, writable: false } }));
      expect(m.get(`${P}healthy`)).toBe(0);
      expect(m.get(`${P}log_writable`)).toBe(0);
      expect(m.has(`${P}checkpoint_size`)).toBe(false);
      expect(m.has(`${P}commit_latency_seconds_count`)).toBe(false);
    });
  });

  it('uses its own registry, never the global default one', async () => {
    const metrics = new GatewayMetrics();
    const text = await metrics.render(sampleSnapshot());
    expect(text).toContain('process_resident_memory_bytes');
    expect(await globalRegistry.metrics()).not.toContain(P);
    // A second instance in the same process does not collide.
    expect(() => new GatewayMetrics()).not.toThrow();
  });
});

describe('LatencyHistogram', () => {
  it('keeps cumulative bucket counts, the sum and the count; ignores negative and non-finite values', () => {
    const h = new LatencyHistogram([0.01, 0.1]);
    for (const s of [0.005, 0.01, 0.05, 2, -1, Number.NaN]) h.observe(s);
    expect(h.snapshot()).toEqual({ bounds: [0.01, 0.1], counts: [2, 3], count: 4, sum: 2.065 });
  });
});
