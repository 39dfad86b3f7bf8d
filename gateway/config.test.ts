import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { exampleConfig } from './config-example.js';
import { describeSchema, referenceTable } from './config-schema.js';
import { CONFIG_SCHEMA, configReference, configWarnings, loadConfig, MAX_CONFIG_BYTES, parseConfig } from './config.js';
import { isGatewayError } from './errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'gw-config-'));
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** The CONFIG error's message for `text`, or a failure if it parses. */
function problems(text: string): string {
  try {
    parseConfig(text, { source: 'gw.yaml', baseDir: '/etc/packchain' });
  } catch (e) {
    expect(isGatewayError(e, 'CONFIG')).toBe(true);
    return (e as Error).message;
  }
  throw new Error('expected a CONFIG error');
}

const minimal = 'name: line-3-gw1\n';

/** Leaf key paths of a parsed YAML/JSON value (lists and null are leaves). */
function leafKeys(v: unknown, prefix = ''): string[] {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return [prefix];
  return Object.entries(v as Record<string, unknown>).flatMap(([k, x]) => leafKeys(x, prefix === '' ? k : `${prefix}.${k}`));
}

describe('parseConfig', () => {
  describe('when only the name is given', () => {
    it('fills every default and resolves relative paths against the config directory', () => {
      const c = parseConfig(minimal, { baseDir: '/etc/packchain' });
      expect(c.name).toBe('line-3-gw1');
      expect(c.dataDir).toBe('/var/lib/packchain');
      expect(c.keyFile).toBe('/etc/packchain/gateway.key');
      expect(c.trustBundle).toBe('/etc/packchain/trust-bundle.json');
      expect(c.logLevel).toBe('info');
      expect(c.transports.serial).toMatchObject({ ports: [], baudRate: 115_200, pollMs: 1000, maxLineBytes: 4096, backoff: { initialMs: 100, maxMs: 5000 }, rate: { messagesPerSecond: 200, bytesPerSecond: 65_536 } });
      expect(c.transports.ble).toMatchObject({ enabled: false, adapter: null, maxDevices: 7, chunkSize: 20 });
      expect(c.log).toEqual({ quotaBytes: 8 * 2 ** 30, checkpoint: { everyEntries: 1000, everyMs: 10_000 }, groupCommit: { maxEntries: 1024 } });
      expect(c.ingest.workers).toBe('auto');
      expect(c.upstream.url).toBeNull();
      expect(c.http.listen).toEqual({ host: '127.0.0.1', port: 9464 });
      expect(c.mqtt).toMatchObject({ enabled: false, url: 'mqtt://127.0.0.1:1883', topicPrefix: 'packchain', discoveryPrefix: 'homeassistant', qos: 0 });
    });
  });

  describe('when the example config is parsed', () => {
    it('gives the same config as the defaults, with the name, paths and data directory init passes', () => {
      const text = exampleConfig({ name: 'line-3-gw1', dataDir: '/srv/pc', keyFile: 'k/gw.key', trustBundle: '/etc/pc/trust.json' });
      const c = parseConfig(text, { baseDir: '/etc/packchain' });
      const d = parseConfig(minimal, { baseDir: '/etc/packchain' });
      expect(c).toEqual({ ...d, dataDir: '/srv/pc', keyFile: '/etc/packchain/k/gw.key', trustBundle: '/etc/pc/trust.json' });
    });

    it('lists exactly the keys of the schema (an option missing from the example fails here)', () => {
      const written = leafKeys(parseYaml(exampleConfig({ name: 'x' }))).sort();
      expect(written).toEqual(describeSchema(CONFIG_SCHEMA).map((r) => r.key).sort());
    });
  });

  describe('when a value is out of range or of the wrong type', () => {
    it.each([
      ['transports:\n  serial:\n    ports: ["/dev/ttyUSB0", 42]\n', 'transports.serial.ports[1]: expected an absolute path or glob', 'got 42 (gw.yaml:4)'],
      ['log:\n  checkpoint:\n    everyEntries: -3\n', 'log.checkpoint.everyEntries: expected an integer 1..1000000', 'got -3 (gw.yaml:4)'],
      ['log:\n  quotaBytes: "8 parsecs"\n', 'log.quotaBytes: expected a size in bytes', 'got "8 parsecs"'],
      ['transports:\n  serial:\n    ports: ["dev/ttyUSB0"]\n', 'transports.serial.ports[0]: expected an absolute path or glob', 'got "dev/ttyUSB0"'],
      ['transports:\n  ble:\n    addresses: ["C0:DE:00:07:00"]\n', 'transports.ble.addresses[0]: expected a BLE address', ''],
      ['transports:\n  ble:\n    enabled: "yes"\n', 'transports.ble.enabled: expected true or false, got "yes"', ''],
      ['http:\n  listen: "0.0.0.0:99999"\n', 'http.listen: expected "host:port"', 'got "0.0.0.0:99999"'],
      ['mqtt:\n  url: "http://broker"\n', 'mqtt.url: expected a URL with scheme mqtt or mqtts or ws or wss', ''],
      ['mqtt:\n  url: "mqtt://gw:secret@broker"\n', 'mqtt.url: expected a URL with scheme mqtt or mqtts or ws or wss and no user:password in it', 'got a URL with a password (not shown)'],
      ['mqtt:\n  topicPrefix: "a/#"\n', 'mqtt.topicPrefix: expected MQTT topic levels', ''],
      ['mqtt:\n  qos: 2\n', 'mqtt.qos: expected one of 0, 1, got 2', ''],
      ['ingest:\n  workers: many\n', 'ingest.workers: expected "auto"', 'got "many"'],
      ['upstream:\n  url: "ftp://ledger"\n', 'upstream.url: expected a URL with scheme https or http', ''],
      ['logLevel: loud\n', 'logLevel: expected one of "fatal", "error"', 'got "loud"'],
      ['transports: [serial]\n', 'transports: expected a mapping of keys to values, got a list', ''],
      ['transports:\n  serial:\n    maxLineBytes: 4096.5\n', 'transports.serial.maxLineBytes: expected an integer 64..4096, got 4096.5', ''],
    ])('%j › names the key and what was expected', (extra, key, got) => {
      const m = problems(minimal + extra);
      expect(m).toContain(`gateway: config: ${key}`);
      expect(m).toContain(got);
    });

    it('when a URL holds a password › does not echo it', () => {
      expect(problems(`${minimal}mqtt: {url: "mqtt://gw:s3cret@broker"}\n`)).not.toContain('s3cret');
    });

    it('with several problems › reports every one, one line each, each naming its key', () => {
      const lines = problems('name: "bad name"\nlogLevel: 3\nmqtt: {qos: 5}\n').split('\n');
      expect(lines).toHaveLength(3);
      expect(lines[0]).toMatch(/^gateway: config: name: expected a gateway name/);
      expect(lines[1]).toMatch(/^gateway: config: logLevel: expected one of .* got 3 \(gw\.yaml:2\)$/);
      expect(lines[2]).toMatch(/^gateway: config: mqtt\.qos: expected one of 0, 1, got 5 \(gw\.yaml:3\)$/);
    });
  });

  describe('when a key is unknown (a typo)', () => {
    it('rejects it naming the key, its line and the nearest known key', () => {
      const m = problems(`${minimal}transports:\n  serial:\n    ports: []\n    baudrate: 9600\n`);
      expect(m).toMatch(/^gateway: config: transports\.serial\.baudrate: unknown key "baudrate"; did you mean "baudRate"\?.* \(gw\.yaml:5\)$/);
    });

    it('rejects an unknown top-level section', () => {
      expect(problems(`${minimal}mqqt:\n  enabled: true\n`)).toContain('gateway: config: mqqt: unknown key "mqqt"; did you mean "mqtt"?');
    });
  });

  describe('when the name is missing', () => {
    it('says it is required', () => {
      expect(problems('logLevel: info\n')).toContain('gateway: config: name: required: expected a gateway name');
    });
  });

  describe('when the text is not YAML', () => {
    it('reports the syntax error with its line', () => {
      expect(problems('name: [\n')).toMatch(/^gateway: config: not valid YAML or JSON: .*\(gw\.yaml:2:1\)$/);
    });

    it('rejects duplicate keys (a later one would silently win)', () => {
      expect(problems('name: a\nname: b\n')).toContain('Map keys must be unique');
    });
  });

  describe('when the file is JSON', () => {
    it('parses it with the same rules and line numbers', () => {
      expect(parseConfig('{"name": "gw-json", "log": {"quotaBytes": "1GiB"}}').log.quotaBytes).toBe(2 ** 30);
      expect(problems('{\n  "name": "gw",\n  "http": {"listen": 9464}\n}\n')).toContain('http.listen: expected "host:port"');
      expect(problems('{\n  "name": "gw",\n  "http": {"listen": 9464}\n}\n')).toContain('(gw.yaml:3)');
    });
  });

  describe('sizes', () => {
    it.each([
      ['"8GiB"', 8 * 2 ** 30],
      ['"500MB"', 500e6],
      ['"1.5 GiB"', 1.5 * 2 ** 30],
      ['1048576', 2 ** 20],
    ])('quotaBytes %s › %d bytes', (v, bytes) => {
      expect(parseConfig(`${minimal}log: {quotaBytes: ${v}}\n`).log.quotaBytes).toBe(bytes);
    });
  });
});

describe('loadConfig', () => {
  it('when the file exists › reads it and resolves paths against its directory', async () => {
    const p = join(tmp, 'gw.yaml');
    writeFileSync(p, `${minimal}keyFile: keys/gw.key\n`);
    const c = await loadConfig(p);
    expect(c.keyFile).toBe(join(tmp, 'keys/gw.key'));
  });

  it('when a value is bad › names the file and line', async () => {
    const p = join(tmp, 'bad.yaml');
    writeFileSync(p, `${minimal}ingest:\n  workers: -1\n`);
    await expect(loadConfig(p)).rejects.toThrow(`gateway: config: ingest.workers: expected "auto" (one per core) or an integer 0..256 (0: verify on the main thread), got -1 (${p}:3)`);
  });

  it('when the file is missing › throws CONFIG naming the path', async () => {
    const p = join(tmp, 'missing.yaml');
    await expect(loadConfig(p)).rejects.toSatisfy((e) => isGatewayError(e, 'CONFIG') && (e as Error).message.includes(`cannot read ${p}: ENOENT`));
  });

  it('when the file is larger than the cap › throws CONFIG without parsing it', async () => {
    const p = join(tmp, 'huge.yaml');
    writeFileSync(p, `${minimal}#${'x'.repeat(MAX_CONFIG_BYTES)}\n`);
    await expect(loadConfig(p)).rejects.toThrow(/expected at most 1048576/);
  });

  // root reads any file, so this case can only be shown as another user.
  it.skipIf(process.getuid?.() === 0)('when the file is not readable › throws CONFIG', async () => {
    const p = join(tmp, 'secret.yaml');
    writeFileSync(p, minimal);
    chmodSync(p, 0);
    await expect(loadConfig(p)).rejects.toThrow(/cannot read .*EACCES/);
  });
});

describe('configWarnings', () => {
  it('warns when no transport is configured and when /status is exposed beyond loopback', () => {
    const c = parseConfig(`${minimal}http: {listen: "0.0.0.0:9464"}\n`);
    const w = configWarnings(c);
    expect(w.some((x) => x.startsWith('no transport'))).toBe(true);
    expect(w.some((x) => x.includes('0.0.0.0 is not loopback'))).toBe(true);
    expect(configWarnings(parseConfig(`${minimal}transports: {serial: {ports: ["/dev/ttyUSB*"]}}\n`))).toEqual([]);
  });
});

describe('configReference', () => {
  it('has one documented row per key, as a Markdown table', () => {
    const rows = configReference();
    expect(rows.find((r) => r.key === 'log.checkpoint.everyEntries')).toMatchObject({ type: 'an integer 1..1000000', default: '1000' });
    expect(rows.find((r) => r.key === 'name')?.default).toBe('required');
    expect(rows.every((r) => r.doc.length > 0)).toBe(true);
    const md = referenceTable(rows);
    expect(md.split('\n').filter((l) => l.startsWith('| `'))).toHaveLength(rows.length);
  });
});
