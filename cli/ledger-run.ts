/**
 * `packchain ledger run --dir D --trust BUNDLE [--listen 127.0.0.1:8470] [--postgres URL]`: the
 * ledger service in the foreground, as systemd runs it (docs/ledger.md "Deployment"). Storage is
 * embedded in D unless --postgres names a database (several `ledger run` processes may share it).
 * JSON logs on stdout (pino). SIGTERM and SIGINT stop it cleanly: the listener closes, requests in
 * flight finish (an upload either commits or rolls back whole), then the storage closes and the
 * process exits 0. SIGHUP reloads the trust bundle (new CRLs) without a restart; a bundle that does
 * not load is logged and the previous one kept. A failure to start is one line on stderr and a
 * sysexits status.
 */
import { join } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { loadWitnessKey } from '../ledger/index.js';
import { ledgerDir, runLedgerAction, storageOf, storageOptions, WITNESS_KEY_FILE, type StorageCliOptions } from './ledger.js';
import { DEFAULT_LISTEN, ledgerLogger, loadLedgerTrust, parseListen, startLedgerService, type ListenAddress } from './ledger-service.js';

interface RunOptions extends StorageCliOptions {
  trust: string;
  listen: ListenAddress;
  logLevel: string;
  verifyThreads?: number;
  web: boolean;
}

export function registerLedgerRun(ledger: Command): void {
  storageOptions(ledger.command('run').description('serve the ledger: gateway sync, service-engineer API, web page, /healthz, /metrics; SIGTERM stops cleanly, SIGHUP reloads the trust bundle'))
    .requiredOption('--trust <bundle>', 'trust bundle (packchain provision export): device roots, intermediates, CRLs')
    .addOption(new Option('--listen <host:port>', 'address to serve on (TLS: put a reverse proxy in front)').default(parseListen(DEFAULT_LISTEN), DEFAULT_LISTEN).argParser(parseListen))
    .addOption(new Option('--log-level <level>', 'pino log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
    .addOption(
      new Option('--verify-threads <n>', 'frame-signature worker threads (default: one per core)').argParser((v: string) => {
        const n = Number(v);
        if (!Number.isSafeInteger(n) || n < 0 || n > 256) throw new InvalidArgumentError('--verify-threads must be an integer 0..256');
        return n;
      }),
    )
    .option('--no-web', 'do not serve the web page (API only)')
    .action(
      runLedgerAction(async (o: RunOptions) => {
        const logger = ledgerLogger(o.logLevel);
        const dir = ledgerDir(o);
        const key = await loadWitnessKey(join(dir, WITNESS_KEY_FILE));
        let trust = await loadLedgerTrust(o.trust);
        const service = await startLedgerService({
          storage: storageOf(o),
          key,
          trust: trust.store,
          trustBundle: () => trust.text,
          listen: [o.listen],
          logger,
          verifyThreads: o.verifyThreads,
          web: o.web,
        });
        const ledgerCore = service.ledger;
        process.on('unhandledRejection', (e) => {
          logger.error({ err: e }, 'ledger: unhandled rejection (a bug; the ledger keeps running)');
        });
        await new Promise<void>((done) => {
          const stop = (signal: string): void => {
            logger.info({ signal }, `ledger: ${signal}: stopping`);
            void service.close().then(() => {
              logger.info('ledger: stopped');
              done();
            });
          };
          process.once('SIGTERM', () => {
            stop('SIGTERM');
          });
          process.once('SIGINT', () => {
            stop('SIGINT');
          });
          process.on('SIGHUP', () => {
            logger.info('ledger: SIGHUP: reloading the trust bundle');
            loadLedgerTrust(o.trust).then(
              (t) => {
                trust = t;
                ledgerCore.setTrust(t.store);
                logger.info('ledger: trust bundle reloaded');
              },
              (e: unknown) => {
                logger.error({ err: e }, 'ledger: trust bundle reload failed; keeping the previous one');
              },
            );
          });
        });
        process.exit(0);
      }),
    );
}
