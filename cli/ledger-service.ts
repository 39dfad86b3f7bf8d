/**
 * The ledger service as `packchain ledger run` and `packchain demo` both start it: the trust bundle
 * loaded from a file, the pino logger (redacting tokens and Authorization), `Ledger.open` with
 * alerts logged and counted, the fastify app of ledger/http on the first free address of a list,
 * and one `close()` that stops the listener, then the storage. Kept here so the two commands share
 * one start-up path (docs/ledger.md "Deployment"); signal handling stays with each command.
 */
import { readFile, stat } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { InvalidArgumentError } from 'commander';
import { pino, type DestinationStream, type Logger } from 'pino';
import { decodeTrustBundle, isProtocolError, MAX_TRUST_BUNDLE_CHARS, TrustStore } from '../protocol/index.js';
import { createLedgerServer, Ledger, LedgerError, LedgerMetrics, type StorageOptions, type WitnessKey } from '../ledger/index.js';

export const DEFAULT_LISTEN = '127.0.0.1:8470';

export interface ListenAddress {
  readonly host: string;
  /** 0: any free port. */
  readonly port: number;
}

/** `host:port` or `[v6]:port` → ListenAddress. Throws commander's InvalidArgumentError. */
export function parseListen(v: string): ListenAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(v);
  const port = Number(m?.[3]);
  const host = m?.[1] ?? m?.[2];
  if (host === undefined || !(port <= 65_535)) throw new InvalidArgumentError('--listen must be host:port, e.g. 127.0.0.1:8470 or [::1]:8470 (port 0: any free port)');
  return { host, port };
}

/** Reads and builds the trust bundle. Throws TRUST_LOAD naming the file and the protocol code. */
export async function loadLedgerTrust(path: string): Promise<{ store: TrustStore; text: string }> {
  let text: string;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_TRUST_BUNDLE_CHARS * 4) throw new Error(`${st.size} bytes, more than a trust bundle may have`);
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new LedgerError('TRUST_LOAD', `ledger: trust bundle ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); expected the file \`packchain provision export\` writes`, { cause: e });
  }
  try {
    return { store: await TrustStore.create(decodeTrustBundle(text)), text };
  } catch (e) {
    if (!isProtocolError(e)) throw e;
    throw new LedgerError('TRUST_LOAD', `ledger: trust bundle ${path}: ${e.code}: ${e.message}`, { cause: e });
  }
}

/** The service's pino logger: JSON lines to `destination` (default stdout, synchronous), secrets redacted. */
export function ledgerLogger(level: string, destination: DestinationStream = pino.destination({ dest: 1, sync: true })): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid, service: 'packchain-ledger' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['authorization', '*.authorization', 'headers.authorization', 'token', '*.token'], censor: '[redacted]' },
    },
    destination,
  );
}

export interface LedgerServiceOptions {
  readonly storage: StorageOptions;
  readonly key: WitnessKey;
  readonly trust: TrustStore;
  /** The current trust bundle text (GET /api/v1/trust); a function so a reload shows at once. */
  readonly trustBundle: () => string;
  /** Tried in order: an address in use (EADDRINUSE) moves on to the next; any other failure is LISTEN. */
  readonly listen: readonly ListenAddress[];
  readonly logger: Logger;
  readonly verifyThreads?: number | undefined;
  /** Serve the web page at / (default true). */
  readonly web?: boolean;
}

export interface RunningLedger {
  readonly ledger: Ledger;
  readonly app: FastifyInstance;
  /** http://host:port of the address it listens on. */
  readonly url: string;
  /** The address of `listen` it got. */
  readonly listen: ListenAddress;
  /** Closes the listener (requests in flight finish), then the storage. Never throws: failures are logged. */
  close(): Promise<void>;
}

/**
 * Opens the ledger and serves it. Throws what Ledger.open throws (STORAGE*, …), LISTEN when no
 * address of `listen` can be bound (the storage is closed again first), and what the web page's
 * asset build throws.
 */
export async function startLedgerService(o: LedgerServiceOptions): Promise<RunningLedger> {
  const { logger } = o;
  const metrics = new LedgerMetrics();
  const ledger = await Ledger.open({
    storage: o.storage,
    witness: o.key.signer,
    trust: o.trust,
    ...(o.verifyThreads === undefined ? {} : { verifyThreads: o.verifyThreads }),
    onAlert: (a) => {
      metrics.alert(a);
      logger[a.level === 'error' ? 'error' : 'warn']({ alert: a }, `ledger: ALERT ${a.kind} ${a.origin}: ${a.message}`);
    },
  });
  let app: FastifyInstance | undefined;
  let bound: ListenAddress | undefined;
  try {
    app = await createLedgerServer({ ledger, logger, metrics, trustBundle: o.trustBundle, webPage: o.web === false ? false : {} });
    for (const [i, a] of o.listen.entries()) {
      try {
        await app.listen({ host: a.host, port: a.port });
        bound = a;
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        const last = i === o.listen.length - 1;
        if (code === 'EADDRINUSE' && !last) continue;
        if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') throw new LedgerError('LISTEN', `ledger: cannot listen on ${a.host}:${a.port}: ${code}`, { cause: e });
        throw e;
      }
    }
    if (bound === undefined) throw new LedgerError('LISTEN', 'ledger: no address to listen on');
  } catch (e) {
    await app?.close().catch(() => undefined);
    await ledger.close();
    throw e;
  }
  const addr = app.server.address();
  const url = typeof addr === 'object' && addr !== null ? `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` : String(addr);
  logger.info({ url, storage: o.storage.kind, witness: o.key.name, verifierKey: o.key.verifierKey }, `ledger: listening on ${url}`);
  const server = app;
  let closing: Promise<void> | undefined;
  return {
    ledger,
    app: server,
    url,
    listen: bound,
    close: () =>
      (closing ??= (async () => {
        try {
          await server.close();
        } catch (e) {
          logger.error({ err: e }, 'ledger: closing the listener failed');
        }
        await ledger.close().catch((e: unknown) => {
          logger.error({ err: e }, 'ledger: closing the storage failed');
        });
      })()),
  };
}
