/**
 * `packchain gateway run --config FILE`: the daemon in the foreground, as systemd runs it
 * (docs/gateway.md "The systemd unit"). JSON logs on stdout (pino; journald keeps them). SIGTERM and
 * SIGINT stop it cleanly — no new frames, in-flight frames appended and acknowledged, a final
 * checkpoint over the whole log — and exit 0; SIGHUP reloads the trust bundle (a new CRL) without
 * a restart. A failure to start (config, key, trust bundle, locked or damaged log, port in use) is
 * one line on stderr and a sysexits status; an error after start is logged and survived.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { configWarnings, createLogger, Gateway, loadConfig } from '../gateway/index.js';
import { configOption, configPath, runGatewayAction, type ConfigOption } from './gateway.js';
import { packageVersion } from './version.js';

interface RunCliOptions extends ConfigOption {
  tickMs?: number;
}

export function registerRun(gateway: Command): void {
  configOption(gateway.command('run').description('run the gateway in the foreground: ingest, log, checkpoints, /healthz /metrics /status; SIGTERM stops cleanly, SIGHUP reloads the trust bundle'))
    .addOption(
      new Option('--tick-ms <ms>', 'how often the checkpoint policy is evaluated (default: min(log.checkpoint.everyMs, 1000))').hideHelp().argParser((v: string) => {
        const x = Number(v);
        if (!Number.isSafeInteger(x) || x < 10 || x > 3_600_000) throw new InvalidArgumentError('--tick-ms must be an integer of ms in 10..3600000');
        return x;
      }),
    )
    .action(
      runGatewayAction(async (o: RunCliOptions) => {
        const config = await loadConfig(configPath(o));
        const logger = createLogger({ level: config.logLevel, gateway: config.name });
        for (const w of configWarnings(config)) logger.warn(`gateway: config: ${w}`);
        let unexpected = 0;
        // The process keeps running on a stray rejection: it is a bug to report, not a reason to drop frames.
        process.on('unhandledRejection', (e) => {
          unexpected++;
          logger.error({ err: e, unexpected }, 'gateway: unhandled rejection (a bug; the gateway keeps running)');
        });
        const gw = await Gateway.start(config, { logger, version: packageVersion(), ...(o.tickMs === undefined ? {} : { tickMs: o.tickMs }) });
        await new Promise<void>((resolve) => {
          const stop = (signal: string): void => {
            logger.info({ signal }, `gateway: ${signal}: stopping`);
            void gw.stop().then(resolve);
          };
          process.once('SIGTERM', () => {
            stop('SIGTERM');
          });
          process.once('SIGINT', () => {
            stop('SIGINT');
          });
          process.on('SIGHUP', () => {
            logger.info('gateway: SIGHUP: reloading the trust bundle');
            void gw.reloadTrust();
          });
        });
        // Serial ports, D-Bus and worker handles may linger after stop: the daemon is done, leave now.
        process.exit(0);
      }),
    );
}
