/**
 * `packchain ledger …`: the upstream ledger (ledger/, docs/ledger.md "CLI"). `ledger init` writes
 * the witness key into the ledger directory and prints its verifier key; `ledger run` serves
 * (ledger-run.ts); the operator commands — `enroll`, `gateways`, `token create|list|revoke`,
 * `evidence` — open the same storage directly: the PostgreSQL database (--postgres), or the
 * embedded store in --dir, which a running `ledger run` holds locked (STORAGE_LOCKED, exit 75:
 * stop the service, or run the ledger on PostgreSQL where operator commands work beside it).
 * Every known failure is one line `ledger: CODE: message` on stderr and the code's exit status
 * (LEDGER_EXIT_CODES, sysexits where one fits); anything else is a bug and exits 70 with its stack.
 */
import { webcrypto } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { createCosigner, createRootCa, TrustStore } from '../protocol/index.js';
import { createWitnessKey, isLedgerError, Ledger, LedgerError, type LedgerErrorCode, type LedgerOptions, loadWitnessKey, WITNESS_NAME_PREFIX, type WitnessKey } from '../ledger/index.js';
import { registerLedgerRun } from './ledger-run.js';
import { loadLedgerTrust } from './ledger-service.js';
import { table } from './provision-common.js';

type Env = Readonly<Record<string, string | undefined>>;

export const DEFAULT_LEDGER_DIR = '/var/lib/packchain-ledger';
export const WITNESS_KEY_FILE = 'witness.key';
export const EXIT_INTERNAL = 70;

/** Exit statuses (sysexits.h where one fits); codes not listed exit 1. */
export const LEDGER_EXIT_CODES: Readonly<Partial<Record<LedgerErrorCode, number>>> = Object.freeze({
  USAGE: 2,
  GATEWAY_KEY: 65, // EX_DATAERR
  KEY_FILE: 66, // EX_NOINPUT
  TRUST_LOAD: 66,
  STORAGE: 69, // EX_UNAVAILABLE
  LISTEN: 71, // EX_OSERR
  INIT_EXISTS: 73, // EX_CANTCREAT
  STORAGE_LOCKED: 75, // EX_TEMPFAIL
  KEY_PERMISSIONS: 77, // EX_NOPERM
  STORAGE_CONFIG: 78, // EX_CONFIG
});

export function ledgerErrorLine(e: LedgerError): string {
  return `ledger: ${e.code}: ${e.message.replace(/^ledger: /, '')}`;
}

/** Wraps a commander action: LedgerError → one line + LEDGER_EXIT_CODES[code] (else 1); other errors → stack + 70. */
export function runLedgerAction<A extends unknown[]>(fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      if (isLedgerError(e)) {
        process.stderr.write(`${ledgerErrorLine(e)}\n`);
        process.exitCode = LEDGER_EXIT_CODES[e.code] ?? 1;
        return;
      }
      process.stderr.write(`ledger: internal error (a bug; please report it with this output):\n${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = EXIT_INTERNAL;
    }
  };
}

export interface StorageCliOptions {
  dir?: string;
  postgres?: string;
}

/** --dir, else $PACKCHAIN_LEDGER_DIR, else /var/lib/packchain-ledger; absolute. */
export function ledgerDir(o: StorageCliOptions, env: Env = process.env): string {
  const e = env.PACKCHAIN_LEDGER_DIR;
  return resolve(o.dir ?? (e !== undefined && e !== '' ? e : DEFAULT_LEDGER_DIR));
}

/** The storage: --postgres URL (or $PACKCHAIN_LEDGER_POSTGRES), else embedded in the ledger directory. */
export function storageOf(o: StorageCliOptions, env: Env = process.env): LedgerOptions['storage'] {
  const e = env.PACKCHAIN_LEDGER_POSTGRES;
  const url = o.postgres ?? (e !== undefined && e !== '' ? e : undefined);
  return url === undefined ? { kind: 'embedded', dir: ledgerDir(o, env) } : { kind: 'postgres', url };
}

export function storageOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--dir <dir>', `ledger directory: witness key, embedded storage (default: $PACKCHAIN_LEDGER_DIR, else ${DEFAULT_LEDGER_DIR})`))
    .addOption(new Option('--postgres <url>', 'PostgreSQL connection URL instead of the embedded storage (default: $PACKCHAIN_LEDGER_POSTGRES)'));
}

const out = (text: string): void => {
  process.stdout.write(text);
};

/**
 * A trust store for operator commands, which judge no frame but must open the Ledger: the bundle
 * given with --trust, else one placeholder root made in memory now that trusts nothing real.
 */
async function adminTrust(path: string | undefined): Promise<TrustStore> {
  if (path !== undefined) return loadLedgerTrust(path).then((t) => t.store);
  const keys = (await webcrypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const root = await createRootCa({ name: 'packchain ledger operator command (trusts nothing)', keys, alg: 'Ed25519', notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) });
  return TrustStore.create({ roots: [root], intermediates: [], crls: [] });
}

interface AdminOptions extends StorageCliOptions {
  trust?: string;
}

/** Opens the ledger for an operator command (no verify workers), runs `fn`, closes. */
async function withLedger<T>(o: AdminOptions, fn: (l: Ledger, key: WitnessKey | undefined) => Promise<T>): Promise<T> {
  const dir = ledgerDir(o);
  const storage = storageOf(o);
  let key: WitnessKey | undefined;
  try {
    key = await loadWitnessKey(join(dir, WITNESS_KEY_FILE));
  } catch (e) {
    // On PostgreSQL an operator host need not hold the witness key; the embedded store lives beside it.
    if (storage.kind === 'embedded' || !isLedgerError(e, 'KEY_FILE')) throw e;
  }
  const witness = key?.signer ?? throwawayWitness();
  const ledger = await Ledger.open({ storage, witness, trust: await adminTrust(o.trust), verifyThreads: 0 });
  try {
    return await fn(ledger, key);
  } finally {
    await ledger.close();
  }
}

/** A cosigner that never signs anything that leaves this process (operator commands upload nothing). */
function throwawayWitness(): WitnessKey['signer'] {
  return createCosigner(`${WITNESS_NAME_PREFIX}operator-command`, crypto.getRandomValues(new Uint8Array(32)), () => Math.floor(Date.now() / 1000));
}

const iso = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString());

/** Host part of a default witness name from the machine's host name. */
function defaultWitnessName(): string {
  const h = hostname().toLowerCase().replace(/[^a-z0-9._-]/g, '-').replace(/^[^a-z0-9]+/, '').slice(0, 63);
  return `${WITNESS_NAME_PREFIX}${h === '' ? 'ledger' : h}`;
}

function registerInit(ledger: Command): void {
  ledger
    .command('init')
    .description('create the ledger directory and its witness key (0600); print the witness verifier key for gateways and verifiers. Never overwrites.')
    .addOption(new Option('--dir <dir>', `ledger directory (default: $PACKCHAIN_LEDGER_DIR, else ${DEFAULT_LEDGER_DIR})`))
    .option('--name <name>', `witness key name (default: ${WITNESS_NAME_PREFIX}<host name>)`)
    .option('--json', 'print the result as JSON')
    .action(
      runLedgerAction(async (o: { dir?: string; name?: string; json?: boolean }) => {
        const dir = ledgerDir(o);
        try {
          await mkdir(dir, { recursive: true, mode: 0o700 });
        } catch (e) {
          throw new LedgerError('KEY_FILE', `ledger: cannot create the ledger directory ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
        }
        const path = join(dir, WITNESS_KEY_FILE);
        const key = await createWitnessKey(path, o.name ?? defaultWitnessName());
        if (o.json === true) {
          out(`${JSON.stringify({ dir, keyFile: path, name: key.name, verifierKey: key.verifierKey }, null, 2)}\n`);
          return;
        }
        out(
          [
            `wrote ${path}  (witness key, mode 0600: back it up offline; every ledger process of this ledger uses the same key)`,
            `witness ${key.name}`,
            'witness verifier key (public; set it as upstream.witnessKey on the gateways, and give it to proof verifiers):',
            key.verifierKey,
            '',
          ].join('\n'),
        );
      }),
    );
}

/** A verifier key given as text, or a file whose first line is one. */
async function vkeyArg(arg: string): Promise<string> {
  if (/^[^\s+]+\+[0-9a-f]{8}\+[A-Za-z0-9+/=]+$/.test(arg.trim())) return arg.trim();
  try {
    return ((await readFile(arg, 'utf8')).split(/\r?\n/)[0] ?? '').trim();
  } catch (e) {
    throw new LedgerError('USAGE', `ledger: enroll: ${JSON.stringify(arg.slice(0, 80))} is neither a verifier key (<name>+<key ID>+<base64>) nor a readable file`, { cause: e });
  }
}

function registerOperatorCommands(ledger: Command): void {
  const admin = (cmd: Command): Command => storageOptions(cmd).addOption(new Option('--trust <bundle>', 'trust bundle (operator commands judge no frame; default: none needed)').hideHelp());

  admin(ledger.command('enroll').description('enroll a gateway by its verifier key (what `packchain gateway init` prints), given as text or a file').argument('<vkey-or-file>'))
    .option('--label <text>', 'a note for operators (site, line)', '')
    .option('--json', 'print the record as JSON')
    .action(
      runLedgerAction(async (arg: string, o: AdminOptions & { label: string; json?: boolean }) => {
        const vkey = await vkeyArg(arg);
        const r = await withLedger(o, (l) => l.enrollGateway(vkey, o.label));
        out(o.json === true ? `${JSON.stringify(r, null, 2)}\n` : `enrolled ${r.origin}  (id ${r.id}${r.label === '' ? '' : `, ${r.label}`}, since ${iso(r.enrolledAt)})\n`);
      }),
    );

  admin(ledger.command('gateways').description('list the enrolled gateways'))
    .option('--json', 'print JSON')
    .action(
      runLedgerAction(async (o: AdminOptions & { json?: boolean }) => {
        const gws = await withLedger(o, (l) => l.gateways());
        if (o.json === true) { out(`${JSON.stringify(gws, null, 2)}\n`); return; }
        if (gws.length === 0) { out('no gateway enrolled (packchain ledger enroll VKEY)\n'); return; }
        out(table(['ORIGIN', 'LABEL', 'ENROLLED', 'STATE', 'VERIFIER KEY'], gws.map((g) => [g.origin, g.label, iso(g.enrolledAt), g.disabled ? 'disabled' : 'active', g.vkey])));
      }),
    );

  const token = ledger.command('token').description('service-engineer API tokens');
  admin(token.command('create').description('create a token and print it once (only its SHA-256 is stored)').argument('<name>')).action(
    runLedgerAction(async (name: string, o: AdminOptions) => {
      const t = await withLedger(o, (l) => l.createToken(name));
      process.stderr.write(`token ${name} created; it is shown once — give it to the service engineer (Authorization: Bearer …)\n`);
      out(`${t}\n`);
    }),
  );
  admin(token.command('list').description('list tokens (names and dates, never the tokens)'))
    .option('--json', 'print JSON')
    .action(
      runLedgerAction(async (o: AdminOptions & { json?: boolean }) => {
        const ts = await withLedger(o, (l) => l.tokens());
        if (o.json === true) { out(`${JSON.stringify(ts, null, 2)}\n`); return; }
        if (ts.length === 0) { out('no token (packchain ledger token create NAME)\n'); return; }
        out(table(['NAME', 'CREATED', 'REVOKED'], ts.map((t) => [t.name, iso(t.createdAt), iso(t.revokedAt)])));
      }),
    );
  admin(token.command('revoke').description('revoke a token (effective at once on every ledger process)').argument('<name>')).action(
    runLedgerAction(async (name: string, o: AdminOptions) => {
      await withLedger(o, (l) => l.revokeToken(name));
      out(`revoked ${name}\n`);
    }),
  );

  admin(ledger.command('evidence').description('fork evidence: both signed checkpoints, the proof, what and when (exit 3 with --check when there is any)'))
    .option('--json', 'print JSON')
    .option('--check', 'exit 3 when any evidence exists (for monitoring scripts)')
    .action(
      runLedgerAction(async (o: AdminOptions & { json?: boolean; check?: boolean }) => {
        const ev = await withLedger(o, (l) => l.evidence());
        if (o.json === true) out(`${JSON.stringify(ev, null, 2)}\n`);
        else if (ev.length === 0) out('no fork evidence\n');
        else {
          for (const e of ev) {
            out(
              [
                `#${e.id}  ${e.kind}  ${e.origin}  ${iso(e.at)}`,
                `  ${e.detail}`,
                ...(e.accepted === null ? [] : ['  accepted checkpoint:', ...e.accepted.trimEnd().split('\n').map((l) => `    ${l}`)]),
                ...(e.offending === null ? [] : ['  offending checkpoint:', ...e.offending.trimEnd().split('\n').map((l) => `    ${l}`)]),
                ...(e.proof.length === 0 ? [] : [`  proof: ${e.proof.join(' ')}`]),
                '',
              ].join('\n'),
            );
          }
        }
        if (o.check === true && ev.length > 0) process.exitCode = 3;
      }),
    );
}

export function registerLedger(program: Command): void {
  const ledger = program.command('ledger').description('upstream ledger: verify gateways\' logs again, witness checkpoints, detect forks, serve pack history, proofs and passports');
  registerInit(ledger);
  registerLedgerRun(ledger);
  registerOperatorCommands(ledger);
}
