/**
 * `packchain gateway …`: the shop-floor gateway (gateway/, docs/gateway.md). `gateway init` writes
 * the commented config and the checkpoint key and prints the verifier key for the ledger;
 * `gateway status` reads a running gateway's /status and prints ports, devices, rates, rejects,
 * log, checkpoint and sync lag. Each command is one `register…` function below, added in
 * `registerGateway`; they share `--config` resolution (configPath) and runGatewayAction, which
 * turns a GatewayError into one line `gateway: CODE: message` on stderr and the code's exit status
 * (sysexits where one fits) — never a stack trace for a known failure; anything else is a bug and
 * exits 70 with its stack.
 */
import { resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { fetchStatus, type GatewayError, type GatewayErrorCode, initGateway, isGatewayError } from '../gateway/index.js';
import { registerLogCommands } from './gateway-log.js';
import { registerRun } from './gateway-run.js';
import { formatStatus } from './gateway-status.js';

type Env = Readonly<Record<string, string | undefined>>;

/** Where the config is when --config is not given and $PACKCHAIN_GATEWAY_CONFIG is not set. */
export const DEFAULT_CONFIG_PATH = '/etc/packchain/gateway.yaml';
export const DEFAULT_STATUS_URL = 'http://127.0.0.1:9464';

/** Exit status of an unexpected failure (sysexits EX_SOFTWARE). */
export const EXIT_INTERNAL = 70;

/** Exit statuses (sysexits.h where one fits); codes not listed exit 1. */
export const GATEWAY_EXIT_CODES: Readonly<Partial<Record<GatewayErrorCode, number>>> = Object.freeze({
  CONFIG: 78, // EX_CONFIG
  KEY_FILE: 66, // EX_NOINPUT
  KEY_PERMISSIONS: 77, // EX_NOPERM
  INIT_EXISTS: 73, // EX_CANTCREAT
  OPS_LISTEN: 71, // EX_OSERR
  OPS_STATUS: 69, // EX_UNAVAILABLE
  STORE_LOCKED: 75, // EX_TEMPFAIL
  STORE_IO: 74, // EX_IOERR
  STORE_CORRUPT: 65, // EX_DATAERR
  TRUST_LOAD: 66, // EX_NOINPUT
  CERT_STORE: 74, // EX_IOERR
  USAGE: 2, // like commander's own usage errors in the log commands
  PROOF_INVALID: 1,
  NOT_FOUND: 1,
  NOT_COVERED: 75, // EX_TEMPFAIL: the next checkpoint covers it
});

export interface ConfigOption {
  config?: string;
}

/** --config, else $PACKCHAIN_GATEWAY_CONFIG, else /etc/packchain/gateway.yaml; absolute. */
export function configPath(o: ConfigOption, env: Env = process.env): string {
  const fromEnv = env.PACKCHAIN_GATEWAY_CONFIG;
  return resolve(o.config ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_CONFIG_PATH));
}

export function configOption(cmd: Command): Command {
  return cmd.addOption(new Option('--config <file>', `gateway config file (default: $PACKCHAIN_GATEWAY_CONFIG, else ${DEFAULT_CONFIG_PATH})`));
}

export function errorLine(e: GatewayError): string {
  return `gateway: ${e.code}: ${e.message.replace(/^gateway: /, '')}`;
}

/** Wraps a commander action: GatewayError → one line + GATEWAY_EXIT_CODES[code] (else 1); other errors → stack + 70. */
export function runGatewayAction<A extends unknown[]>(fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      if (isGatewayError(e)) {
        process.stderr.write(`${errorLine(e)}\n`);
        process.exitCode = GATEWAY_EXIT_CODES[e.code] ?? 1;
        return;
      }
      process.stderr.write(`gateway: internal error (a bug; please report it with this output):\n${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = EXIT_INTERNAL;
    }
  };
}

const out = (text: string): void => {
  process.stdout.write(text);
};

interface InitCliOptions extends ConfigOption {
  name: string;
  dataDir?: string;
  keyFile?: string;
  trustBundle?: string;
  json?: boolean;
}

function registerInit(gateway: Command): void {
  configOption(
    gateway
      .command('init')
      .description('write a commented gateway config and a new checkpoint key (0600); print the verifier key for the ledger. Never overwrites.')
      .requiredOption('--name <name>', 'gateway name: checkpoints are signed as packchain.gateway/<name> (1-63 of A-Z a-z 0-9 . _ -)'),
  )
    .option('--data-dir <dir>', 'data directory written into the config (default /var/lib/packchain)')
    .option('--key-file <file>', 'key file (default: gateway.key beside the config)')
    .option('--trust-bundle <file>', 'trust bundle path written into the config (default: trust-bundle.json beside the config)')
    .option('--json', 'print the result as JSON')
    .action(
      runGatewayAction(async (o: InitCliOptions) => {
        const r = await initGateway({
          configPath: configPath(o),
          name: o.name,
          ...(o.dataDir === undefined ? {} : { dataDir: resolve(o.dataDir) }),
          ...(o.keyFile === undefined ? {} : { keyFile: resolve(o.keyFile) }),
          ...(o.trustBundle === undefined ? {} : { trustBundle: resolve(o.trustBundle) }),
        });
        if (o.json === true) {
          out(`${JSON.stringify({ configPath: r.configPath, keyFile: r.keyFile, origin: r.origin, verifierKey: r.verifierKey, dataDir: r.config.dataDir, trustBundle: r.config.trustBundle }, null, 2)}\n`);
          return;
        }
        out(
          [
            `wrote ${r.configPath}  (edit transports.serial.ports / transports.ble before the first start)`,
            `wrote ${r.keyFile}  (checkpoint key, mode 0600: back it up offline; never copy it to another gateway)`,
            `origin ${r.origin}`,
            `trust bundle expected at ${r.config.trustBundle}  (packchain provision export, at the station)`,
            `data directory ${r.config.dataDir}  (owned by the service user)`,
            'verifier key (public; give it to the ledger operator):',
            r.verifierKey,
            '',
          ].join('\n'),
        );
      }),
    );
}

interface StatusCliOptions {
  url?: string;
  json?: boolean;
  timeout: number;
}

function registerStatus(gateway: Command): void {
  gateway
    .command('status')
    .description('show a running gateway: health, log, checkpoint, sync lag, ports, devices, rates, rejects by reason')
    .addOption(new Option('--url <url>', `the gateway's http.listen address (default: $PACKCHAIN_GATEWAY_URL, else ${DEFAULT_STATUS_URL})`))
    .option('--json', 'print the status document as JSON')
    .addOption(
      new Option('--timeout <ms>', 'give up after this long').default(5000).argParser((v: string) => {
        const x = Number(v);
        if (!Number.isSafeInteger(x) || x < 1 || x > 600_000) throw new InvalidArgumentError('--timeout must be an integer of ms in 1..600000');
        return x;
      }),
    )
    .action(
      runGatewayAction(async (o: StatusCliOptions) => {
        const env = process.env.PACKCHAIN_GATEWAY_URL;
        const url = o.url ?? (env !== undefined && env !== '' ? env : DEFAULT_STATUS_URL);
        const s = await fetchStatus(url, o.timeout);
        out(o.json === true ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s));
      }),
    );
}

export function registerGateway(program: Command): void {
  const gateway = program.command('gateway').description('shop-floor gateway: verify packs\' signed frames into a durable Merkle log, checkpoints, sync, operations');
  registerInit(gateway);
  registerRun(gateway);
  registerStatus(gateway);
  registerLogCommands(gateway);
}
