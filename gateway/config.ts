/**
 * The gateway's configuration file (docs/gateway.md "Configuration"): the `GatewayConfig` type, its
 * schema (config-schema.ts) with defaults and one line of documentation per key, and `loadConfig`,
 * which reads a YAML or JSON file (JSON is YAML 1.2, so one parser with line numbers serves both),
 * rejects unknown keys and out-of-range values with messages that name the key, the expected value
 * and the line (`gateway: config: log.checkpoint.everyEntries: expected an integer 1..1000000, got
 * -3 (gateway.yaml:14)`), fills defaults, and resolves relative file paths against the config
 * file's directory. Option names and ranges follow the option types of the store, transports and
 * pipeline, so the daemon passes sections through; their constructors check again.
 * The commented example that `gateway init` writes lives in config-example.ts.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, isMap, isNode, isPair, isScalar, type Node } from 'yaml';
import { gatewayOrigin, parseVerifierKey } from '../protocol/index.js';
import { GatewayError } from './errors.js';
import { DEFAULT_IN_FLIGHT } from './sync/client.js';
import { bool, bytes, custom, describeSchema, int, INVALID, list, nullable, obj, oneOf, pathText, str, type Problem, type ReferenceRow, type Spec } from './config-schema.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface BackoffConfig {
  readonly initialMs: number;
  readonly maxMs: number;
}

export interface RateConfig {
  readonly messagesPerSecond: number;
  readonly bytesPerSecond: number;
  readonly burstSeconds: number;
}

/** gateway/transport/serial.ts SerialTransportOptions; serial runs when `ports` is not empty. */
export interface SerialConfig {
  readonly ports: readonly string[];
  readonly baudRate: number;
  readonly pollMs: number;
  readonly maxLineBytes: number;
  readonly writeTimeoutMs: number;
  readonly backoff: BackoffConfig;
  readonly rate: RateConfig;
}

/** gateway/transport/ble.ts BleTransportOptions. */
export interface BleConfig {
  readonly enabled: boolean;
  readonly adapter: string | null;
  readonly addresses: readonly string[];
  readonly maxDevices: number;
  readonly connectConcurrency: number;
  readonly scanIntervalMs: number;
  readonly connectTimeoutMs: number;
  readonly chunkSize: number;
  readonly backoff: BackoffConfig;
  readonly rate: RateConfig;
}

/** gateway/store LogStoreOptions and CheckpointPolicy. */
export interface LogConfig {
  readonly quotaBytes: number;
  readonly checkpoint: { readonly everyEntries: number; readonly everyMs: number };
  readonly groupCommit: { readonly maxEntries: number };
}

/** gateway/ingest PipelineOptions. */
export interface IngestConfig {
  /** 'auto': one verification worker per core. */
  readonly workers: 'auto' | number;
  readonly maxQueued: number;
  readonly maxInFlight: number;
  readonly maxInFlightPerChannel: number;
  readonly holdInputAt: number;
  readonly clockSkewToleranceMs: number;
}

/** The sync client to the upstream ledger (gateway/sync/, issue 7). */
export interface UpstreamConfig {
  readonly url: string | null;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Clamped to protocol MAX_UPLOAD_ENTRIES (8192) by the client. */
  readonly maxBatchEntries: number;
  readonly maxBatchBytes: number;
  readonly maxInFlightBatches: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** The ledger's witness verifier key (C2SP vkey); null: cosignatures are kept without checking the witness key. */
  readonly witnessKey: string | null;
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export interface HttpConfig {
  /** null: no HTTP endpoint. */
  readonly listen: ListenAddress | null;
}

/** gateway/ops/mqtt.ts MqttPublisherOptions. */
export interface MqttConfig {
  readonly enabled: boolean;
  readonly url: string;
  readonly username: string | null;
  readonly passwordFile: string | null;
  readonly clientId: string | null;
  readonly topicPrefix: string;
  readonly discovery: boolean;
  readonly discoveryPrefix: string;
  readonly minIntervalMs: number;
  readonly qos: 0 | 1;
}

export interface GatewayConfig {
  readonly name: string;
  readonly dataDir: string;
  readonly keyFile: string;
  readonly trustBundle: string;
  readonly logLevel: LogLevel;
  readonly transports: { readonly serial: SerialConfig; readonly ble: BleConfig };
  readonly log: LogConfig;
  readonly ingest: IngestConfig;
  readonly upstream: UpstreamConfig;
  readonly http: HttpConfig;
  readonly mqtt: MqttConfig;
}

/** Largest config file read (a real one is about 3 KiB). */
export const MAX_CONFIG_BYTES = 1 << 20;
const DAY_MS = 86_400_000;

const gatewayName = custom('a gateway name: 1-63 of A-Z a-z 0-9 . _ - starting with a letter or digit', (v) => {
  if (typeof v !== 'string') return undefined;
  try {
    gatewayOrigin(v);
    return v;
  } catch {
    return undefined;
  }
});

/** A file path; relative paths are taken from the config file's directory. */
const filePath = custom('a file path (relative to the config file\'s directory)', (v, ctx) =>
  typeof v === 'string' && v !== '' && !v.includes('\0') ? resolve(ctx.baseDir, v) : undefined,
);

const portPattern = str('an absolute path or glob (`*`, `?`, `[..]`), e.g. "/dev/serial/by-id/usb-FTDI_*"', /^\/[^\0]*$/);

const listen = custom<ListenAddress>('"host:port" (e.g. "127.0.0.1:9464", "[::1]:9464"; port 0 takes a free port)', (v) => {
  if (typeof v !== 'string') return undefined;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(v);
  const port = Number(m?.[3]);
  const host = m?.[1] ?? m?.[2];
  return host !== undefined && port <= 65_535 ? { host, port } : undefined;
});

const witnessKey = custom('a C2SP verifier key <name>+<8 hex>+<base64> (what `packchain ledger init` prints)', (v) => {
  if (typeof v !== 'string') return undefined;
  try {
    parseVerifierKey(v.trim());
    return v.trim();
  } catch {
    return undefined;
  }
});

/**
 * A URL of one of `protocols`, without credentials in it: configs are 0640 and their values get
 * shown (secrets go in files), so a URL with a password is refused without echoing it.
 */
function url(protocols: readonly string[], example: string): Spec<string> {
  const type = `a URL with scheme ${protocols.map((p) => p.slice(0, -1)).join(' or ')} and no user:password in it (e.g. "${example}")`;
  const base = custom(type, (v) => {
    if (typeof v !== 'string') return undefined;
    try {
      const u = new URL(v);
      return protocols.includes(u.protocol) && u.hostname !== '' && u.username === '' && u.password === '' ? v : undefined;
    } catch {
      return undefined;
    }
  });
  return {
    type,
    parse(v, path, ctx) {
      if (typeof v === 'string' && URL.canParse(v) && new URL(v).password !== '') {
        ctx.problems.push({ path, message: `expected ${type}, got a URL with a password (not shown); put the user in mqtt.username and the password in mqtt.passwordFile` });
        return INVALID;
      }
      return base.parse(v, path, ctx);
    },
  };
}

const topic = str('MQTT topic levels of A-Z a-z 0-9 _ . - separated by "/" (no wildcards)', /^[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*$/);

function backoff(initialMs: number, maxMs: number) {
  return {
    spec: obj<BackoffConfig>({
      initialMs: { spec: int(1, 3_600_000), default: initialMs, doc: 'first wait before reconnecting, ms' },
      maxMs: { spec: int(1, 3_600_000), default: maxMs, doc: 'longest wait (the wait doubles per failed attempt, half of it jittered), ms' },
    }),
    doc: 'reconnect backoff',
  };
}

const rate = {
  spec: obj<RateConfig>({
    messagesPerSecond: { spec: int(1, 1_000_000), default: 200, doc: 'input messages (and decoder errors) per second per device; beyond: dropped, RATE_LIMITED' },
    bytesPerSecond: { spec: int(1, 1 << 30), default: 65_536, doc: 'input bytes per second per device; beyond: dropped, RATE_LIMITED' },
    burstSeconds: { spec: int(1, 3600), default: 2, doc: 'seconds of rate a burst may use' },
  }),
  doc: 'per-device input caps',
};

export const CONFIG_SCHEMA: Spec<GatewayConfig> = obj<GatewayConfig>({
  name: { spec: gatewayName, doc: 'gateway name; checkpoints are signed as origin packchain.gateway/<name>. Never change it for an existing log' },
  dataDir: { spec: filePath, default: '/var/lib/packchain', doc: 'the log, its state and the ingest state (the service user must own it)' },
  keyFile: { spec: filePath, default: 'gateway.key', defaultText: '"gateway.key" beside the config', doc: 'the gateway\'s Ed25519 checkpoint key (signer key text, mode 0600)' },
  trustBundle: { spec: filePath, default: 'trust-bundle.json', defaultText: '"trust-bundle.json" beside the config', doc: 'trusted roots, line CAs and CRLs (`packchain provision export`)' },
  logLevel: { spec: oneOf<LogLevel>(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), default: 'info', doc: 'JSON log level (stdout; journald under systemd)' },
  transports: {
    spec: obj<GatewayConfig['transports']>({
      serial: {
        spec: obj<SerialConfig>({
          ports: { spec: list(portPattern, 0, 256), default: [], doc: 'serial ports: absolute paths and globs; empty: no serial transport' },
          baudRate: { spec: int(50, 16_000_000), default: 115_200, doc: 'line rate of real UARTs (no effect on ptys)' },
          pollMs: { spec: int(10, 3_600_000), default: 1000, doc: 'how often globs are expanded and missing ports looked for, ms' },
          maxLineBytes: { spec: int(64, 4096), default: 4096, doc: 'longest accepted line including LF; longer: LINE_TOO_LONG' },
          writeTimeoutMs: { spec: int(1, 600_000), default: 5000, doc: 'a write not done by then closes the port, ms' },
          backoff: backoff(100, 5000),
          rate,
        }),
        doc: 'USB-serial ports',
      },
      ble: {
        spec: obj<BleConfig>({
          enabled: { spec: bool(), default: false, doc: 'connect to packs over Bluetooth LE (BlueZ)' },
          adapter: { spec: nullable(str('an adapter name like "hci0"', /^hci\d{1,3}$/)), default: null, doc: 'BlueZ adapter; null: the first one' },
          addresses: { spec: list(str('a BLE address "C0:DE:00:07:00:04"', /^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$/), 0, 1000), default: [], doc: 'connect only these devices; empty: every pack advertising the packchain service' },
          maxDevices: { spec: int(1, 50), default: 7, doc: 'devices connected at once (controllers take 5-10 LE links; 50 keeps a D-Bus session under its match-rule budget)' },
          connectConcurrency: { spec: int(1, 16), default: 2, doc: 'connection attempts at once' },
          scanIntervalMs: { spec: int(100, 3_600_000), default: 2000, doc: 'between device scans, ms' },
          connectTimeoutMs: { spec: int(100, 600_000), default: 15_000, doc: 'deadline of a connect and its GATT lookup, ms' },
          chunkSize: { spec: int(20, 244), default: 20, doc: 'write chunk size, ATT_MTU - 3 (node-ble cannot read the MTU: keep 20)' },
          backoff: backoff(500, 30_000),
          rate,
        }),
        doc: 'Bluetooth LE',
      },
    }),
    doc: 'device transports',
  },
  log: {
    spec: obj<LogConfig>({
      quotaBytes: { spec: bytes(1 << 20, 2 ** 50), default: '8GiB', doc: 'disk quota of the log; only entries the ledger acknowledged are pruned, else appends stop (devices keep their frames)' },
      checkpoint: {
        spec: obj<LogConfig['checkpoint']>({
          everyEntries: { spec: int(1, 1_000_000), default: 1000, doc: 'sign a checkpoint after this many new entries' },
          everyMs: { spec: int(100, DAY_MS), default: 10_000, doc: '... or this long after the last one if the log grew, ms' },
        }),
        doc: 'checkpoint policy',
      },
      groupCommit: {
        spec: obj<LogConfig['groupCommit']>({
          maxEntries: { spec: int(1, 65_536), default: 1024, doc: 'most entries written and fsynced in one commit' },
        }),
        doc: 'group commit',
      },
    }),
    doc: 'the Merkle log',
  },
  ingest: {
    spec: obj<IngestConfig>({
      workers: {
        spec: custom<'auto' | number>('"auto" (one per core) or an integer 0..256 (0: verify on the main thread)', (v) => (v === 'auto' || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= 256) ? v : undefined)),
        default: 'auto',
        doc: 'signature verification worker threads',
      },
      maxQueued: { spec: int(1, 1_000_000), default: 8192, doc: 'frames waiting for verification; beyond: INGEST_BUSY, not acked' },
      maxInFlight: { spec: int(1, 10_000_000), default: 16_384, doc: 'frames received and not yet acked, all channels' },
      maxInFlightPerChannel: { spec: int(1, 1_000_000), default: 1024, doc: 'the same, per channel' },
      holdInputAt: { spec: int(0, 10_000_000), default: 2048, doc: 'frames in flight at which serial ports stop reading until half are acked (0: never)' },
      clockSkewToleranceMs: { spec: int(0, DAY_MS), default: 300_000, doc: 'device clocks further off are flagged in status, ms' },
    }),
    doc: 'verification pipeline',
  },
  upstream: {
    spec: obj<UpstreamConfig>({
      url: { spec: nullable(url(['https:', 'http:'], 'https://ledger.example.com')), default: null, doc: 'the upstream ledger; null: no sync (the log keeps everything up to the quota)' },
      intervalMs: { spec: int(100, DAY_MS), default: 5000, doc: 'between sync rounds, ms' },
      timeoutMs: { spec: int(100, 600_000), default: 30_000, doc: 'one request, ms' },
      maxBatchEntries: { spec: int(1, 65_536), default: 4096, doc: 'entries per upload (at most 8192 are used: the protocol\'s cap)' },
      maxBatchBytes: { spec: bytes(128 * 1024, 12 * 1024 * 1024), default: '4MiB', doc: 'upload body size' },
      maxInFlightBatches: { spec: int(1, 16), default: DEFAULT_IN_FLIGHT, doc: 'uploads on the wire at once (in-flight bytes ≤ this × maxBatchBytes)' },
      backoffBaseMs: { spec: int(10, DAY_MS), default: 1000, doc: 'first retry after a failure within [0, this) ms; doubles per failure (full jitter)' },
      backoffMaxMs: { spec: int(10, DAY_MS), default: 300_000, doc: 'cap of the retry delay, ms' },
      witnessKey: { spec: nullable(witnessKey), default: null, doc: 'the ledger\'s witness verifier key (`packchain ledger init` prints it); when set, a checkpoint the ledger returns without its valid cosignature is an error (SYNC_WITNESS)' },
    }),
    doc: 'sync to the ledger',
  },
  http: {
    spec: obj<HttpConfig>({
      listen: { spec: nullable(listen), default: '127.0.0.1:9464', doc: '/healthz, /metrics, /status; null: off. No authentication: keep it on loopback or a trusted network' },
    }),
    doc: 'operations endpoint',
  },
  mqtt: {
    spec: obj<MqttConfig>({
      enabled: { spec: bool(), default: false, doc: 'publish live telemetry to an MQTT broker' },
      url: { spec: url(['mqtt:', 'mqtts:', 'ws:', 'wss:'], 'mqtt://127.0.0.1:1883'), default: 'mqtt://127.0.0.1:1883', doc: 'broker' },
      username: { spec: nullable(str('a user name', /^[^\0]{1,256}$/)), default: null, doc: 'broker user' },
      passwordFile: { spec: nullable(filePath), default: null, doc: 'file holding the broker password (keep it out of the config)' },
      clientId: { spec: nullable(str('1-64 of A-Z a-z 0-9 _ . -', /^[A-Za-z0-9_.-]{1,64}$/)), default: null, defaultText: '"packchain-<name>"', doc: 'MQTT client id' },
      topicPrefix: { spec: topic, default: 'packchain', doc: 'state topics <prefix>/<name>/<serial>/state, availability <prefix>/<name>/status' },
      discovery: { spec: bool(), default: true, doc: 'publish Home Assistant MQTT discovery configs' },
      discoveryPrefix: { spec: topic, default: 'homeassistant', doc: 'Home Assistant discovery prefix' },
      minIntervalMs: { spec: int(0, DAY_MS), default: 5000, doc: 'at most one state message per pack per interval (the latest wins), ms' },
      qos: { spec: oneOf<0 | 1>([0, 1]), default: 0, doc: 'MQTT QoS of state messages' },
    }),
    doc: 'MQTT telemetry',
  },
});

/** Every key with type, default and meaning, for docs/gateway.md. */
export function configReference(): ReferenceRow[] {
  return describeSchema(CONFIG_SCHEMA);
}

function where(problem: Problem, doc: ReturnType<typeof parseDocument>, lines: LineCounter): number | undefined {
  const path = problem.path;
  let node: unknown = problem.atKey === true ? doc.getIn(path.slice(0, -1), true) : doc.getIn(path, true);
  if (problem.atKey === true && isMap(node)) {
    const key = path[path.length - 1];
    const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === key);
    node = pair?.key;
  }
  if (!isNode(node)) {
    // A missing key: point at the mapping that lacks it.
    for (let n = path.length - 1; n >= 0 && !isNode(node); n--) node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
  }
  const start = isNode(node) ? (node as Node).range?.[0] : undefined;
  return start === undefined ? undefined : lines.linePos(start).line;
}

function configError(source: string, lines: readonly string[]): GatewayError {
  const shown = lines.slice(0, 20);
  if (lines.length > shown.length) shown.push(`gateway: config: ... and ${lines.length - shown.length} more problems in ${source}`);
  return new GatewayError('CONFIG', shown.join('\n'));
}

/**
 * Parses and validates config text. `source` names the file in messages; relative paths resolve
 * against `baseDir`. Throws GatewayError CONFIG listing every problem, one line each:
 * `gateway: config: <key path>: expected <what>, got <value> (<source>:<line>)`.
 */
export function parseConfig(text: string, opts: { source?: string; baseDir?: string } = {}): GatewayConfig {
  const source = opts.source ?? '<config>';
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw configError(
      source,
      doc.errors.map((e) => {
        const what = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
        const at = e.linePos === undefined ? '' : `:${e.linePos[0].line}:${e.linePos[0].col}`;
        return `gateway: config: not valid YAML or JSON: ${what} (${source}${at})`;
      }),
    );
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new GatewayError('CONFIG', `gateway: config: ${source}: ${(e as Error).message}`, { cause: e });
  }
  const problems: Problem[] = [];
  const parsed = CONFIG_SCHEMA.parse(value, [], { baseDir: opts.baseDir ?? process.cwd(), problems });
  if (parsed === INVALID || problems.length > 0) {
    throw configError(
      source,
      problems.map((p) => {
        const line = where(p, doc, lineCounter);
        return `gateway: config: ${pathText(p.path)}: ${p.message} (${source}${line === undefined ? '' : `:${line}`})`;
      }),
    );
  }
  return parsed;
}

/**
 * Reads and validates the config file at `path` (YAML or JSON). Throws GatewayError CONFIG when the
 * file cannot be read, exceeds MAX_CONFIG_BYTES, or does not validate (see parseConfig). Referenced
 * files (key, trust bundle) are not opened here: the daemon reports those.
 */
export async function loadConfig(path: string): Promise<GatewayConfig> {
  const abs = resolve(path);
  let buf: Buffer;
  try {
    buf = await readFile(abs);
  } catch (e) {
    throw new GatewayError('CONFIG', `gateway: config: cannot read ${abs}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; expected a readable YAML or JSON file`, { cause: e });
  }
  if (buf.length > MAX_CONFIG_BYTES) throw new GatewayError('CONFIG', `gateway: config: ${abs} is ${buf.length} bytes; expected at most ${MAX_CONFIG_BYTES}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch (e) {
    throw new GatewayError('CONFIG', `gateway: config: ${abs} is not UTF-8 text`, { cause: e });
  }
  return parseConfig(text, { source: abs, baseDir: dirname(abs) });
}

/** Things that are valid but probably not meant; the daemon logs them as warnings at start. */
export function configWarnings(c: GatewayConfig): string[] {
  const out: string[] = [];
  if (c.transports.serial.ports.length === 0 && !c.transports.ble.enabled) out.push('no transport: transports.serial.ports is empty and transports.ble.enabled is false; no pack can connect');
  const host = c.http.listen?.host;
  if (host !== undefined && !/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(host)) out.push(`http.listen ${host} is not loopback: /status and /metrics have no authentication`);
  if (c.mqtt.enabled && c.mqtt.username !== null && c.mqtt.passwordFile === null) out.push('mqtt.username is set without mqtt.passwordFile');
  const up = c.upstream;
  if (up.url !== null) {
    if (up.url.startsWith('http:') && !/^http:\/\/(127\.\d+\.\d+\.\d+|\[::1\]|localhost)[:/]/.test(up.url)) out.push(`upstream.url ${up.url} is plain http: requests are signed, but frames travel unencrypted; put TLS in front of the ledger`);
    if (up.maxBatchEntries > 8192) out.push(`upstream.maxBatchEntries ${up.maxBatchEntries} exceeds the protocol's 8192 entries per upload: 8192 are used`);
    if (up.backoffBaseMs > up.backoffMaxMs) out.push(`upstream.backoffBaseMs ${up.backoffBaseMs} exceeds upstream.backoffMaxMs ${up.backoffMaxMs}: the cap is used for both`);
    if (up.witnessKey === null) out.push('upstream.witnessKey is null: the ledger\'s cosignatures are kept without checking whose they are');
  }
  return out;
}
