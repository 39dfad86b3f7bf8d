/**
 * The commented example configuration that `packchain gateway init` writes (docs/gateway.md
 * "Configuration"). It sets every key of the schema to its default — except the name and the
 * paths given to init — so an operator sees every knob with one line on what it does, and
 * config.test.ts checks that it parses and that it lists exactly the schema's keys (an option added
 * to the schema but not here fails the test).
 */

export interface ExampleConfigOptions {
  /** Gateway name (checkpoint origin packchain.gateway/<name>). */
  readonly name: string;
  readonly dataDir?: string;
  readonly keyFile?: string;
  readonly trustBundle?: string;
}

/** YAML strings are written double-quoted with JSON escapes (a JSON string is a valid YAML one). */
const q = (s: string): string => JSON.stringify(s);

/** The example config text for `o`. Pure; the caller validates `o.name`. */
export function exampleConfig(o: ExampleConfigOptions): string {
  return `# packchain gateway configuration (docs/gateway.md "Configuration").
# YAML (or JSON). Unknown keys are errors. Relative paths are taken from this file's directory.
# Durations are integers of milliseconds (…Ms); sizes take units ("8GiB", "500MB").

# Checkpoints are signed as origin packchain.gateway/<name>. Never change the name of a gateway
# that has a log: the key file belongs to the name, and the ledger knows the log by its origin.
name: ${q(o.name)}

dataDir: ${q(o.dataDir ?? '/var/lib/packchain')}   # the log, its state and the ingest state; owned by the service user
keyFile: ${q(o.keyFile ?? 'gateway.key')}   # Ed25519 checkpoint key, mode 0600 (written by gateway init)
trustBundle: ${q(o.trustBundle ?? 'trust-bundle.json')}   # from \`packchain provision export\` at the station

logLevel: info        # fatal | error | warn | info | debug | trace | silent (JSON lines on stdout)

transports:
  serial:
    # Absolute paths and globs (* ? [..] within a path segment). Prefer stable names:
    # /dev/serial/by-id/..., /dev/serial/by-path/... or your own udev links. Empty: no serial.
    ports: []
    #  - "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_*-if00-port0"
    #  - "/dev/packchain/*"
    baudRate: 115200    # real UARTs only
    pollMs: 1000        # glob expansion and hot-plug checks
    maxLineBytes: 4096  # 64..4096, LF included
    writeTimeoutMs: 5000
    backoff: { initialMs: 100, maxMs: 5000 }    # reopen after an unplug or error
    rate: { messagesPerSecond: 200, bytesPerSecond: 65536, burstSeconds: 2 }   # per port; beyond: dropped
  ble:
    enabled: false
    adapter: null       # null: the first adapter; or "hci0"
    addresses: []       # only these packs ("C0:DE:00:07:00:04"); empty: any packchain pack in range
    maxDevices: 7       # connected at once; many controllers take 5-10 LE links
    connectConcurrency: 2
    scanIntervalMs: 2000
    connectTimeoutMs: 15000
    chunkSize: 20       # ATT_MTU - 3; keep 20 (node-ble cannot read the negotiated MTU)
    backoff: { initialMs: 500, maxMs: 30000 }
    rate: { messagesPerSecond: 200, bytesPerSecond: 65536, burstSeconds: 2 }

log:
  quotaBytes: "8GiB"    # disk bound; only entries the ledger acknowledged are pruned, else appends stop
  checkpoint:
    everyEntries: 1000  # sign after this many new entries
    everyMs: 10000      # ... or after this long, if the log grew
  groupCommit:
    maxEntries: 1024    # entries per write + fsync

ingest:
  workers: auto         # verification threads: auto (one per core) or 0..256
  maxQueued: 8192       # frames waiting for verification; beyond: INGEST_BUSY (not acked, device resends)
  maxInFlight: 16384
  maxInFlightPerChannel: 1024
  holdInputAt: 2048     # serial ports stop reading at this many frames in flight, until half are acked (0: never)
  clockSkewToleranceMs: 300000   # device clocks further off are flagged

upstream:               # sync to the ledger
  url: null             # e.g. "https://ledger.example.com"; null: no sync
  intervalMs: 5000
  timeoutMs: 30000
  maxBatchEntries: 4096 # at most 8192 (the protocol's cap)
  maxBatchBytes: 4MiB   # upload body size (≤ 12MiB)
  maxInFlightBatches: 3 # uploads on the wire at once
  backoffBaseMs: 1000   # retry after a failure within [0, base·2^(n-1)) ms (full jitter) ...
  backoffMaxMs: 300000  # ... capped here
  witnessKey: null      # the ledger's witness key (packchain ledger init prints it): checks its cosignatures

http:
  listen: "127.0.0.1:9464"   # /healthz, /metrics, /status; null: off. No authentication: keep it local

mqtt:                   # live telemetry, e.g. for Home Assistant
  enabled: false
  url: "mqtt://127.0.0.1:1883"
  username: null
  passwordFile: null    # a file holding the password, mode 0600
  clientId: null        # null: packchain-<name>
  topicPrefix: packchain          # <prefix>/<name>/<serial>/state, <prefix>/<name>/status
  discovery: true                 # Home Assistant MQTT discovery
  discoveryPrefix: homeassistant
  minIntervalMs: 5000   # at most one state message per pack per interval (the latest wins)
  qos: 0
`;
}
