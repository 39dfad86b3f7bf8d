/**
 * What the MQTT publisher sends (docs/gateway.md "Home Assistant"): topic names, the retained
 * per-pack state JSON in display units from protocol's field table (%, V, A, °C, Ah: wire value ×
 * scale, rounded to the scale's decimals, so 52480 mV is 52.48, never 52.480000000000004; counts
 * and `…Seconds` fields as on the wire), and Home Assistant MQTT discovery configs: one device per
 * pack (identified by its serial, so a pack seen by two gateways is one device), one entity per
 * measurement with device_class, state_class and unit, and one gateway device whose connectivity
 * sensor reads the availability topic (the broker publishes "offline" there as the client's last
 * will). Pure functions; mqtt.ts sends.
 */
import { ALARM_BITS, FRAME_FIELDS, type SohFrame } from '../../protocol/index.js';

export interface TopicOptions {
  readonly topicPrefix: string;
  readonly discoveryPrefix: string;
  /** Gateway name. */
  readonly gateway: string;
}

export const ONLINE = 'online';
export const OFFLINE = 'offline';

/** `<prefix>/<gateway>/status`: "online" (retained) while connected, "offline" as the last will. */
export const availabilityTopic = (o: TopicOptions): string => `${o.topicPrefix}/${o.gateway}/status`;

/** `<prefix>/<gateway>/<serial>/state`, retained JSON. */
export const stateTopic = (o: TopicOptions, serial: string): string => `${o.topicPrefix}/${o.gateway}/${serial}/state`;

/** Home Assistant announces its restarts here; the publisher then sends its discovery configs again. */
export const haStatusTopic = (o: TopicOptions): string => `${o.discoveryPrefix}/status`;

/** HA object ids allow [a-zA-Z0-9_-]. */
const objectId = (...parts: string[]): string => parts.join('_').replace(/[^A-Za-z0-9_-]/g, '_');

const decimalsOf = (scale: number): number => (scale >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(scale) - 1e-9)));
const scaled = (v: number, scale: number): number => Number((v * scale).toFixed(decimalsOf(scale)));

export const ALARM_NAMES: readonly (readonly [string, number])[] = Object.entries(ALARM_BITS);

/** The retained state message of one stored frame, in display units. */
export function stateMessage(frame: SohFrame, receivedAt: number, source: string): Record<string, unknown> {
  const out: Record<string, unknown> = { serial: frame.serial, counter: frame.counter, time: new Date(frame.time).toISOString(), receivedAt: new Date(receivedAt).toISOString(), source };
  for (const f of FRAME_FIELDS) {
    if (f.name === 'v' || f.name === 'serial' || f.name === 'counter' || f.name === 'time') continue;
    const v = frame[f.name];
    if (v === undefined) continue;
    if (f.kind === 'cells' && Array.isArray(v)) out[f.name] = v.map((x) => scaled(x, f.scale));
    // Counts stay counts; *Seconds fields stay seconds (their name says so; the table shows hours).
    else if (typeof v === 'number') out[f.name] = f.unit === '' || f.name.endsWith('Seconds') ? v : scaled(v, f.scale);
    else out[f.name] = v;
  }
  out.alarmNames = ALARM_NAMES.filter(([, bit]) => (frame.alarms & bit) !== 0).map(([name]) => name);
  return out;
}

interface Entity {
  readonly component: 'sensor' | 'binary_sensor';
  readonly key: string;
  readonly name: string;
  readonly config: Record<string, unknown>;
}

const measure = (key: keyof SohFrame, name: string, unit: string | undefined, deviceClass: string | undefined, extra: Record<string, unknown> = {}): Entity => ({
  component: 'sensor',
  key,
  name,
  config: {
    value_template: `{{ value_json.${key} }}`,
    state_class: 'measurement',
    ...(unit === undefined ? {} : { unit_of_measurement: unit }),
    ...(deviceClass === undefined ? {} : { device_class: deviceClass }),
    ...extra,
  },
});

/** The entities of one pack (units match stateMessage). */
export const PACK_ENTITIES: readonly Entity[] = [
  measure('soc', 'State of charge', '%', 'battery'),
  measure('soh', 'State of health', '%', undefined, { icon: 'mdi:battery-heart-variant' }),
  measure('voltage', 'Voltage', 'V', 'voltage'),
  measure('current', 'Current', 'A', 'current'),
  measure('tempMin', 'Temperature min', '°C', 'temperature'),
  measure('tempMax', 'Temperature max', '°C', 'temperature'),
  measure('remainingCapacity', 'Remaining capacity', 'Ah', undefined, { icon: 'mdi:battery-medium' }),
  measure('cycles', 'Full cycles', undefined, undefined, { state_class: 'total_increasing', icon: 'mdi:battery-sync' }),
  measure('resistance', 'Internal resistance', 'mΩ', undefined, { entity_category: 'diagnostic', icon: 'mdi:omega' }),
  {
    component: 'binary_sensor',
    key: 'alarms',
    name: 'Alarm',
    config: {
      device_class: 'problem',
      value_template: "{{ 'ON' if value_json.alarms != 0 else 'OFF' }}",
      json_attributes_template: '{{ {"alarms": value_json.alarmNames} | tojson }}',
    },
  },
  { component: 'sensor', key: 'receivedAt', name: 'Last frame', config: { device_class: 'timestamp', value_template: '{{ value_json.receivedAt }}', entity_category: 'diagnostic' } },
  { component: 'sensor', key: 'counter', name: 'Frame counter', config: { value_template: '{{ value_json.counter }}', entity_category: 'diagnostic', icon: 'mdi:counter' } },
];

export interface DiscoveryMessage {
  readonly topic: string;
  readonly payload: Record<string, unknown>;
}

const origin = (version: string): Record<string, unknown> => ({ name: 'packchain', sw_version: version });
const gatewayDeviceId = (gateway: string): string => objectId('packchain', 'gateway', gateway);

/** Discovery configs of one pack (retain them). */
export function packDiscovery(o: TopicOptions, frame: SohFrame, version: string): DiscoveryMessage[] {
  const serial = frame.serial;
  const availability = availabilityTopic(o);
  const device = {
    identifiers: [objectId('packchain', 'pack', serial)],
    name: `Battery pack ${serial}`,
    manufacturer: 'packchain',
    model: 'BMU',
    sw_version: frame.firmware,
    serial_number: serial,
    via_device: gatewayDeviceId(o.gateway),
  };
  return PACK_ENTITIES.map((e) => {
    const uid = objectId('packchain', o.gateway, serial, e.key);
    const payload: Record<string, unknown> = {
      name: e.name,
      unique_id: uid,
      object_id: objectId('packchain', serial, e.key),
      state_topic: stateTopic(o, serial),
      availability_topic: availability,
      payload_available: ONLINE,
      payload_not_available: OFFLINE,
      ...e.config,
      ...(e.component === 'binary_sensor' && 'json_attributes_template' in e.config ? { json_attributes_topic: stateTopic(o, serial) } : {}),
      device,
      origin: origin(version),
    };
    return { topic: `${o.discoveryPrefix}/${e.component}/${uid}/config`, payload };
  });
}

/** The gateway's own device: a connectivity sensor on the availability topic. */
export function gatewayDiscovery(o: TopicOptions, version: string): DiscoveryMessage {
  const uid = objectId('packchain', o.gateway, 'online');
  return {
    topic: `${o.discoveryPrefix}/binary_sensor/${uid}/config`,
    payload: {
      name: 'Online',
      unique_id: uid,
      device_class: 'connectivity',
      entity_category: 'diagnostic',
      state_topic: availabilityTopic(o),
      payload_on: ONLINE,
      payload_off: OFFLINE,
      device: { identifiers: [gatewayDeviceId(o.gateway)], name: `packchain gateway ${o.gateway}`, manufacturer: 'packchain', model: 'gateway', sw_version: version },
      origin: origin(version),
    },
  };
}
