import { describe, expect, it } from 'vitest';
import type { SohFrame } from '../../protocol/index.js';
import { availabilityTopic, gatewayDiscovery, packDiscovery, PACK_ENTITIES, stateMessage, stateTopic } from './mqtt-topics.js';

const frame: SohFrame = {
  v: 1,
  serial: 'PACK-0042',
  counter: 17,
  time: Date.parse('2026-03-01T07:59:59Z'),
  soc: 1000,
  soh: 3,
  voltage: 52_480,
  current: -2_000_000,
  tempMin: -550,
  tempMax: 1500,
  cycles: 0,
  cells: [0, 6000, 3301],
  remainingCapacity: 123_456,
  resistance: 1500,
  alarms: 0,
  firmware: '1.4.2',
  overTempSeconds: 5400,
  roundTripEfficiency: 917,
};
const o = { topicPrefix: 'packchain', discoveryPrefix: 'homeassistant', gateway: 'line-3.gw1' };

describe('stateMessage', () => {
  it('converts wire units to display units exactly, keeps counts, and names set alarm bits', () => {
    expect(stateMessage(frame, Date.parse('2026-03-01T08:00:00Z'), 'ble:C0:DE:00:07:00:04')).toEqual({
      serial: 'PACK-0042',
      counter: 17,
      time: '2026-03-01T07:59:59.000Z',
      receivedAt: '2026-03-01T08:00:00.000Z',
      source: 'ble:C0:DE:00:07:00:04',
      soc: 100,
      soh: 0.3,
      voltage: 52.48,
      current: -2000,
      tempMin: -55,
      tempMax: 150,
      cycles: 0,
      cells: [0, 6, 3.301],
      remainingCapacity: 123.456,
      resistance: 1.5,
      alarms: 0,
      alarmNames: [],
      firmware: '1.4.2',
      overTempSeconds: 5400, // seconds, as the name says
      roundTripEfficiency: 91.7,
    });
  });
});

describe('discovery', () => {
  it('gives every pack entity a unique id, a config topic of valid object ids and the pack device', () => {
    const msgs = packDiscovery(o, frame, '0.1.0');
    expect(msgs).toHaveLength(PACK_ENTITIES.length);
    expect(new Set(msgs.map((m) => m.payload.unique_id)).size).toBe(msgs.length);
    for (const m of msgs) {
      expect(m.topic).toMatch(/^homeassistant\/(sensor|binary_sensor)\/[A-Za-z0-9_-]+\/config$/);
      expect(m.payload).toMatchObject({ state_topic: 'packchain/line-3.gw1/PACK-0042/state', availability_topic: availabilityTopic(o), device: { identifiers: ['packchain_pack_PACK-0042'], sw_version: '1.4.2' } });
    }
    expect(msgs.find((m) => m.payload.unique_id === 'packchain_line-3_gw1_PACK-0042_tempMax')?.payload).toMatchObject({ unit_of_measurement: '°C', device_class: 'temperature', state_class: 'measurement' });
    expect(stateTopic(o, 'PACK-0042')).toBe('packchain/line-3.gw1/PACK-0042/state');
    expect(gatewayDiscovery(o, '0.1.0').topic).toBe('homeassistant/binary_sensor/packchain_line-3_gw1_online/config');
  });
});
