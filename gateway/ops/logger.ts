/**
 * The gateway's logger: pino JSON lines on stdout (journald keeps them under systemd; `journalctl
 * -u packchain-gateway -o cat | npx pino-pretty` reads them), one line per event with `gateway:
 * <name>`, an ISO time and pino's numeric level. Secrets are redacted by field name wherever a log
 * call might carry them (seed, private and signer keys, passwords, tokens, authorization headers)
 * as a second line of defence: the code never passes key material to the logger in the first place
 * (STYLE.md habit 9). Writes are synchronous so the last lines before a crash or a SIGKILL-ing
 * watchdog are not lost in a buffer; the gateway logs events, not frames, so the cost is small.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from '../config.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Gateway name, on every line. */
  readonly gateway?: string;
  /** Default stdout (fd 1), written synchronously. Tests pass a stream. */
  readonly destination?: DestinationStream;
}

const SECRET_FIELDS = ['seed', 'privateKey', 'signerKey', 'secretKey', 'password', 'passphrase', 'secret', 'token', 'authorization'];

/** pino redact paths: each secret field at the top level and up to two levels down (and in `headers`). */
export const REDACT_PATHS: readonly string[] = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  ...SECRET_FIELDS.map((f) => `*.*.${f}`),
  'headers.authorization',
  'req.headers.authorization',
];

export const REDACTED = '[redacted]';

/** A pino logger for the gateway. Throws pino's Error for an unknown level (config.ts has checked it). */
export function createLogger(o: LoggerOptions): Logger {
  return pino(
    {
      level: o.level,
      base: o.gateway === undefined ? { pid: process.pid } : { pid: process.pid, gateway: o.gateway },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: [...REDACT_PATHS], censor: REDACTED },
    },
    o.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
