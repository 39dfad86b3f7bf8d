/**
 * What every `packchain provision …` subcommand shares (docs/provisioning.md): the station
 * directory (--dir, env PACKCHAIN_STATION_DIR, else ./station), the CA passphrases (a file, an
 * environment variable, or a prompt without echo on a terminal — never an argument, which `ps` would
 * show), the station and operator names recorded with each attempt, a plain table printer, and
 * runProvisionAction, which turns a ProvisioningError into one line `provisioning: CODE: message` on
 * stderr and the code's exit status (EXIT_CODES) — a technician or a line script never sees a stack
 * trace for a known failure; anything else is a bug and exits 70 (EX_SOFTWARE) with its stack.
 */
import { readFileSync, statSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { EXIT_CODES, isProvisioningError, ProvisioningError } from '../provisioning/index.js';

/** Exit status of an unexpected failure (sysexits EX_SOFTWARE): a bug, not a technician's problem. */
export const EXIT_INTERNAL = 70;

export interface StationCliOptions {
  dir?: string;
  passphraseFile?: string;
  rootPassphraseFile?: string;
  station?: string;
  operator?: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/** Adds --dir; with `passphrases`, --passphrase-file and --root-passphrase-file; with `attempts`, --station and --operator. */
export function stationOptions(cmd: Command, what: { passphrases?: boolean; root?: boolean; attempts?: boolean } = {}): Command {
  cmd.addOption(new Option('--dir <dir>', 'station directory (default: $PACKCHAIN_STATION_DIR, else ./station)'));
  if (what.passphrases === true) {
    cmd.addOption(new Option('--passphrase-file <file>', 'file holding the line CA passphrase (default: $PACKCHAIN_CA_PASSPHRASE, else a prompt)'));
  }
  if (what.root === true) {
    cmd.addOption(new Option('--root-passphrase-file <file>', 'file holding the root CA passphrase (default: $PACKCHAIN_ROOT_PASSPHRASE, else the line CA one)'));
  }
  if (what.attempts === true) {
    cmd.addOption(new Option('--station <name>', 'station name recorded with each attempt (default: the host name)'));
    cmd.addOption(new Option('--operator <name>', 'operator recorded with each attempt (default: $USER)'));
  }
  return cmd;
}

/** --dir, else env PACKCHAIN_STATION_DIR, else ./station; absolute. */
export function stationDir(o: StationCliOptions, env: Env = process.env): string {
  return resolve(o.dir ?? env.PACKCHAIN_STATION_DIR ?? 'station');
}

export function stationName(o: StationCliOptions): string {
  return o.station ?? hostname();
}

export function operatorName(o: StationCliOptions, env: Env = process.env): string {
  if (o.operator !== undefined) return o.operator;
  if (env.USER !== undefined && env.USER !== '') return env.USER;
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

/** A passphrase file's content without one trailing newline. Throws USAGE when unreadable or empty; warns when others can read it. */
export function readPassphraseFile(path: string, warn: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
    const mode = statSync(path).mode & 0o777;
    if ((mode & 0o077) !== 0) warn(`provisioning: warning: passphrase file ${path} is readable by others (mode ${mode.toString(8).padStart(4, '0')}); chmod 600 it`);
  } catch (e) {
    throw new ProvisioningError('USAGE', `provisioning: passphrase file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'unreadable'}`, { cause: e });
  }
  const pass = text.replace(/\r?\n$/, '');
  if (pass === '') throw new ProvisioningError('USAGE', `provisioning: passphrase file ${path} is empty`);
  return pass;
}

/** Reads one line from the terminal without echo. Ctrl-C or Ctrl-D abort with CA_PASSPHRASE. */
export function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  return new Promise((done, fail) => {
    let value = '';
    const finish = (err?: ProvisioningError): void => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err !== undefined) fail(err);
      else done(value);
    };
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          finish();
          return;
        }
        if (ch === '\u0003' || ch === '\u0004') {
          finish(new ProvisioningError('CA_PASSPHRASE', 'provisioning: passphrase entry aborted'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') value = Array.from(value).slice(0, -1).join('');
        else value += ch;
      }
    };
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}

function interactive(): boolean {
  return process.stdin.isTTY && process.stderr.isTTY;
}

/**
 * The line CA passphrase: --passphrase-file, env PACKCHAIN_CA_PASSPHRASE, a prompt on a terminal
 * (twice with `confirm`, for ca init). Throws CA_PASSPHRASE when none can be had, USAGE for a bad file.
 */
export async function linePassphrase(o: StationCliOptions, opts: { confirm?: boolean; env?: Env } = {}): Promise<string> {
  const env = opts.env ?? process.env;
  if (o.passphraseFile !== undefined) return readPassphraseFile(o.passphraseFile);
  const fromEnv = env.PACKCHAIN_CA_PASSPHRASE;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (!interactive()) {
    throw new ProvisioningError('CA_PASSPHRASE', 'provisioning: no line CA passphrase: give --passphrase-file FILE or set PACKCHAIN_CA_PASSPHRASE (no terminal to prompt on)');
  }
  const pass = await promptHidden('line CA passphrase: ');
  if (opts.confirm === true && (await promptHidden('line CA passphrase (again): ')) !== pass) {
    throw new ProvisioningError('USAGE', 'provisioning: the two passphrases differ');
  }
  return pass;
}

/**
 * The root CA passphrase: --root-passphrase-file, env PACKCHAIN_ROOT_PASSPHRASE, else — as the design
 * allows — the line CA's (resolved as linePassphrase does; at init, a terminal prompt where an empty
 * answer means "the same"). Throws CA_PASSPHRASE / USAGE like linePassphrase.
 */
export async function rootPassphrase(o: StationCliOptions, opts: { confirm?: boolean; env?: Env; line?: string } = {}): Promise<string> {
  const env = opts.env ?? process.env;
  if (o.rootPassphraseFile !== undefined) return readPassphraseFile(o.rootPassphraseFile);
  const fromEnv = env.PACKCHAIN_ROOT_PASSPHRASE;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (opts.line !== undefined) {
    if (!interactive() || o.passphraseFile !== undefined || (env.PACKCHAIN_CA_PASSPHRASE ?? '') !== '') return opts.line;
    const pass = await promptHidden('root CA passphrase (empty: the same as the line CA): ');
    if (pass === '') return opts.line;
    if (opts.confirm === true && (await promptHidden('root CA passphrase (again): ')) !== pass) {
      throw new ProvisioningError('USAGE', 'provisioning: the two passphrases differ');
    }
    return pass;
  }
  if (o.passphraseFile !== undefined || (env.PACKCHAIN_CA_PASSPHRASE ?? '') !== '') return linePassphrase(o, { env });
  if (!interactive()) {
    throw new ProvisioningError('CA_PASSPHRASE', 'provisioning: no root CA passphrase: give --root-passphrase-file FILE or set PACKCHAIN_ROOT_PASSPHRASE (no terminal to prompt on)');
  }
  return promptHidden('root CA passphrase: ');
}

/** Left-aligned columns separated by two spaces; trailing spaces trimmed. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

/** ISO-8601 UTC to the second: 2026-03-01T08:00:00Z. */
export function isoSeconds(d: Date | string): string {
  return new Date(d).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** First 16 hex digits of a key fingerprint grouped 4-4-4-4, as on the label line. */
/** A ProvisioningError's line for stderr: `provisioning: CODE: message`. */
export function errorLine(e: ProvisioningError): string {
  return `provisioning: ${e.code}: ${e.message.replace(/^provisioning: /, '')}`;
}

/**
 * Wraps a commander action: a ProvisioningError prints `provisioning: CODE: message` and sets
 * process.exitCode = EXIT_CODES[code]; any other error prints its stack and sets EXIT_INTERNAL.
 */
export function runProvisionAction<A extends unknown[]>(fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      if (isProvisioningError(e)) {
        process.stderr.write(`${errorLine(e)}\n`);
        process.exitCode = EXIT_CODES[e.code];
        return;
      }
      process.stderr.write(`provisioning: internal error (a bug; please report it with this output):\n${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = EXIT_INTERNAL;
    }
  };
}
