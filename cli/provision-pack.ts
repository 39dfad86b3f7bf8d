/**
 * `packchain provision pack` and `packchain provision line` (docs/provisioning.md): what the line
 * technician runs. `pack` provisions the one pack on --port (serial) or --ble (an address, through
 * BlueZ on the system bus or --bus-address) and prints one label line —
 * `PASS  <serial>  <alg>  key <fingerprint>  cert <serial>` or `FAIL <serial> <CODE>: <reason>` —
 * plus, for a FAIL, what to do next on stderr; its exit status names the failure (EXIT_CODES), so a
 * line script or PLC can branch without parsing text. `line` watches a port glob and provisions
 * every newly connected serial pack concurrently with one live line per port (serial only), until --count or Ctrl-C
 * (attempts in flight finish first), then prints a summary; exit 0 if every pack passed, else 3.
 * Both first resolve attempts a crashed station left PENDING (certificate revoked, FAIL recorded).
 */
import { join } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { ATTEMPT_STEPS, type AttemptOutcome, type BleTarget, LineScreen, type PackFailureCode, ProvisioningError, provisionPack, type ProvisionPackOptions, Registry, REGISTRY_FILE, resolvePending, runLine, serialsFromFile, serialsFromPattern, StationCa } from '../provisioning/index.js';
import { linePassphrase, operatorName, runProvisionAction, stationDir, stationName, stationOptions, type StationCliOptions } from './provision-common.js';

/** What the technician does about each failure (docs/provisioning.md "When a pack fails"). */
export const NEXT_STEP: Readonly<Record<PackFailureCode, string>> = {
  NO_DEVICE: 'check the USB-serial adapter is plugged in and the --port path (ls /dev/serial/by-id/), then run again',
  NO_ANSWER: 'check the pack is powered and its serial cable seated; wait for it to boot and run again',
  UNKNOWN_FIRMWARE: 'flash an accepted firmware (see --accept-firmware) or set the pack aside for engineering',
  ALREADY_PROVISIONED: 'check the serial on the pack; to re-provision it run again with --force (its old certificate is revoked)',
  POP_FAILED: 'set the pack aside: its BMU cannot prove it holds its key (faulty or tampered); do not retry on the line',
  SELFTEST_FAILED: 'set the pack aside for inspection; its certificate has been revoked',
  SERIAL_IN_USE: 'this serial belongs to another pack: scan the right label, or check `packchain provision show SERIAL`',
  KEY_IN_USE: 'set the pack aside: its key already belongs to another pack (cloned or replayed key); report it',
  DEVICE_LOST: 'reconnect the pack and run again; anything issued in this attempt has been revoked',
  DEVICE_ERROR: 'run again once; if it fails the same way, set the pack aside for engineering',
};

/** Where a BLE pack's next step differs from a serial one's. */
export const NEXT_STEP_BLE: Readonly<Partial<Record<PackFailureCode, string>>> = {
  NO_DEVICE: 'check the pack is powered, in range and advertising, the --ble address (bluetoothctl devices) and that Bluetooth is on, then run again',
  NO_ANSWER: 'check the pack is powered and has booted; move it closer to the station and run again',
  DEVICE_LOST: 'keep the pack close to the station and run again; anything issued in this attempt has been revoked',
};

interface AttemptCliOptions extends StationCliOptions {
  model?: string;
  alg: 'ES256' | 'Ed25519';
  acceptFirmware?: RegExp;
  timeoutMs: number;
  keygenTimeoutMs: number;
}

function int(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}`);
    return n;
  };
}

function regex(v: string): RegExp {
  try {
    return new RegExp(v);
  } catch (e) {
    throw new InvalidArgumentError(`not a regular expression: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The options `pack` and `line` share. */
function attemptOptions(cmd: Command): Command {
  return stationOptions(cmd, { passphrases: true, attempts: true })
    .option('--model <model>', 'model written into the certificate (default: the model the pack reports)')
    .addOption(new Option('--alg <alg>', 'device key algorithm').choices(['ES256', 'Ed25519']).default('ES256'))
    .option('--accept-firmware <regex>', 'firmware versions this station accepts (default ^1\\.\\d+\\.\\d+$)', regex)
    .option('--timeout-ms <ms>', 'per-request timeout', int('--timeout-ms', 100, 600_000), 3000)
    .option('--keygen-timeout-ms <ms>', 'keygen timeout (key generation is slow on some BMUs)', int('--keygen-timeout-ms', 100, 600_000), 5000);
}

/** Opens the CA and the registry, resolves crash leftovers, runs `fn`, closes the registry. */
async function withStation<T>(o: StationCliOptions, fn: (ca: StationCa, registry: Registry) => Promise<T>): Promise<T> {
  const dir = stationDir(o);
  const ca = await StationCa.open({ dir, passphrase: await linePassphrase(o) });
  const registry = await Registry.open(join(dir, REGISTRY_FILE));
  try {
    for (const r of await resolvePending(ca, registry)) {
      const cert = r.certSerialHex === undefined ? 'no certificate had been issued' : `certificate ${r.certSerialHex} revoked`;
      process.stderr.write(`provisioning: recovered an unfinished attempt: ${r.serial} on ${r.port} (started ${r.startedAt}) recorded FAIL; ${cert}\n`);
    }
    return await fn(ca, registry);
  } finally {
    await registry.close();
  }
}

function attemptBase(o: AttemptCliOptions, ca: StationCa, registry: Registry): Omit<ProvisionPackOptions, 'port' | 'serial'> {
  return {
    ca,
    registry,
    station: stationName(o),
    operator: operatorName(o),
    alg: o.alg,
    timeoutMs: o.timeoutMs,
    keygenTimeoutMs: o.keygenTimeoutMs,
    ...(o.model === undefined ? {} : { model: o.model }),
    ...(o.acceptFirmware === undefined ? {} : { acceptFirmware: o.acceptFirmware }),
  };
}

function outcomeJson(r: AttemptOutcome): Record<string, unknown> {
  const { record, ...rest } = r;
  return { ...rest, attemptId: record.id, certSha256: record.certSha256 ?? null, certNotAfter: record.certNotAfter ?? null };
}

function registerPack(provision: Command): void {
  attemptOptions(provision.command('pack').description('provision the pack on one serial port: key on the pack, certificate, self-test, label line'))
    .option('--port <path>', 'serial port of the pack (e.g. /dev/serial/by-id/usb-FTDI_…); or --ble')
    .option('--ble <address>', 'BLE address of the pack (AA:BB:CC:DD:EE:FF); or --port')
    .option('--bus-address <address>', 'with --ble: D-Bus address of the bus BlueZ is on (default: the system bus)')
    .option('--adapter <name>', 'with --ble: Bluetooth adapter (default: the first, e.g. hci0)')
    .option('--connect-timeout-ms <ms>', 'with --ble: finding and connecting to the pack', int('--connect-timeout-ms', 100, 600_000), 15_000)
    .requiredOption('--serial <serial>', 'pack serial to certify (A-Z 0-9 -, 1..32 characters)')
    .option('--force', 're-provision a pack that already holds a certificate (the old one is revoked)')
    .option('--json', 'print the outcome as one JSON document instead of the label line')
    .action(
      runProvisionAction(async (_o: unknown, cmd: Command) => {
        const o = cmd.optsWithGlobals<AttemptCliOptions & { port?: string; ble?: string; busAddress?: string; adapter?: string; connectTimeoutMs: number; serial: string; force?: boolean; json?: boolean }>();
        if ((o.port === undefined) === (o.ble === undefined)) throw new ProvisioningError('USAGE', 'provisioning: give exactly one of --port PATH (serial) or --ble ADDRESS');
        if (o.ble === undefined && (o.busAddress !== undefined || o.adapter !== undefined)) throw new ProvisioningError('USAGE', 'provisioning: --bus-address and --adapter go with --ble');
        const ble: BleTarget | undefined = o.ble === undefined ? undefined : { address: o.ble, busAddress: o.busAddress, adapter: o.adapter, connectTimeoutMs: o.connectTimeoutMs };
        const live = process.stderr.isTTY && o.json !== true;
        const outcome = await withStation(o, (ca, registry) =>
          provisionPack({
            ...attemptBase(o, ca, registry),
            ...(ble === undefined ? { port: o.port ?? '' } : { ble }),
            serial: o.serial,
            force: o.force === true,
            onProgress: (ev) => {
              const n = ATTEMPT_STEPS.indexOf(ev.step) + 1;
              if (live) process.stderr.write(`\r\x1b[2K${ev.serial}  step ${n}/${ATTEMPT_STEPS.length}: ${ev.step}`);
            },
          }),
        );
        if (live) process.stderr.write('\r\x1b[2K');
        if (o.json === true) process.stdout.write(`${JSON.stringify(outcomeJson(outcome), null, 2)}\n`);
        else process.stdout.write(`${outcome.label}\n`);
        if (outcome.code !== undefined && o.json !== true) process.stderr.write(`next: ${(ble === undefined ? undefined : NEXT_STEP_BLE[outcome.code]) ?? NEXT_STEP[outcome.code]}\n`);
        process.exitCode = outcome.exitCode;
      }),
    );
}

function registerLine(provision: Command): void {
  attemptOptions(provision.command('line').description('provision every newly connected pack on the ports matching a glob, concurrently'))
    .requiredOption('--ports <glob>', "ports to watch, * and ? allowed (quote it: '/dev/serial/by-id/usb-FTDI*')")
    .option('--serials <file>', 'scanner file: one pack serial per line, used in order')
    .option('--serial-pattern <pattern>', 'serials from a counter, e.g. PK-2026-{0001}')
    .option('--count <n>', 'stop after n packs (PASS or FAIL); default: until Ctrl-C', int('--count', 1, 1_000_000))
    .option('--poll-ms <ms>', 'how often to look for new ports', int('--poll-ms', 50, 60_000), 500)
    .action(
      runProvisionAction(async (_o: unknown, cmd: Command) => {
        const o = cmd.optsWithGlobals<AttemptCliOptions & { ports: string; serials?: string; serialPattern?: string; count?: number; pollMs: number }>();
        if ((o.serials === undefined) === (o.serialPattern === undefined)) {
          throw new ProvisioningError('USAGE', 'provisioning: give exactly one of --serials FILE or --serial-pattern PATTERN');
        }
        const stop = new AbortController();
        let signals = 0;
        const onSignal = (sig: NodeJS.Signals): void => {
          signals++;
          if (signals === 1) {
            process.stderr.write(`\nprovisioning: ${sig}: no new packs; finishing the attempts in progress (again to quit at once)\n`);
            stop.abort();
            return;
          }
          // Unfinished attempts stay PENDING and are revoked and failed by the next start (resolvePending).
          process.stderr.write(`provisioning: ${sig} again: quitting now\n`);
          process.exit(130);
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        try {
          const summary = await withStation(o, (ca, registry) => {
            // Warnings go through the screen so they never break the live lines.
            const screen = new LineScreen(process.stdout);
            const warn = (w: string): void => {
              screen.message(`warning: ${w}`);
            };
            const serials = o.serials !== undefined ? serialsFromFile(o.serials, registry, warn) : serialsFromPattern(o.serialPattern ?? '', registry, warn);
            const base = attemptBase(o, ca, registry);
            return runLine({
              ports: o.ports,
              serials,
              pollMs: o.pollMs,
              ...(o.count === undefined ? {} : { count: o.count }),
              attempt: (port, serial, onProgress) => provisionPack({ ...base, port, serial, onProgress }),
              out: process.stdout,
              screen,
              signal: stop.signal,
            });
          });
          process.exitCode = summary.exitCode;
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      }),
    );
}

/** Adds `pack` and `line` to the `provision` command. */
export function registerProvisionPack(provision: Command): void {
  registerPack(provision);
  registerLine(provision);
}
