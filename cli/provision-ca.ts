/**
 * `packchain provision ca init|show|crl`, `revoke`, `export`, `list` and `show` (docs/provisioning.md):
 * the CA ceremony and the station's certificate bookkeeping, as a technician or a line script runs
 * them. Output is plain text for people (tables, one fact per line) or `--json` for scripts; it never
 * contains a private key or a passphrase. Only the commands that sign (`ca init`, `ca crl`, `revoke`)
 * ask for a passphrase; `ca show`, `export`, `list` and `show` read public files or open the registry
 * read-only, so they are safe to run beside a station that is provisioning.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { type CaCertSummary, caPaths, type CaSummary, type CrlSummary, parseRevocationReason, ProvisioningError, readCrlSummaries, readTrustBundle, refreshRootCrl, Registry, REGISTRY_FILE, REVOCATION_REASONS, revokeSerial, StationCa, writeFileAtomic } from '../provisioning/index.js';
import { printAttempts, printHistory } from './provision-records.js';
import { isoSeconds, linePassphrase, rootPassphrase, runProvisionAction, stationDir, stationOptions, table, type StationCliOptions } from './provision-common.js';

const out = (text: string): void => {
  process.stdout.write(text);
};

function int(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}`);
    return n;
  };
}

function isoDate(v: string): Date {
  const t = Date.parse(v);
  if (!Number.isFinite(t)) throw new InvalidArgumentError('expected an ISO-8601 date or time, e.g. 2026-03-01 or 2026-03-01T08:00:00Z');
  return new Date(t);
}

function certLines(label: string, c: CaCertSummary): string {
  return [
    `${label}  ${c.subject}`,
    `  serial   ${c.serialHex}`,
    `  valid    ${isoSeconds(c.notBefore)} to ${isoSeconds(c.notAfter)}`,
    `  SHA-256  ${c.fingerprint}`,
  ].join('\n');
}

const FILE_NOTES: readonly [keyof ReturnType<typeof caPaths>, string][] = [
  ['ca', 'CA directory'],
  ['rootKey', 'root CA private key, encrypted; move it to offline media after the ceremony'],
  ['lineKey', 'line CA private key, encrypted; stays on the station'],
  ['rootCert', 'root CA certificate'],
  ['lineCert', 'line CA certificate'],
  ['rootCrl', 'root CRL'],
  ['lineCrl', 'line CRL'],
  ['state', 'CRL numbering'],
];

function fileLines(dir: string): string {
  const p = caPaths(dir);
  const rows = FILE_NOTES.map(([k, note]) => {
    const path = p[k];
    const name = relative(dir, path) + (k === 'ca' ? '/' : '');
    if (!existsSync(path)) return ['-', name, k === 'rootKey' ? 'root CA private key: not here (kept offline)' : `${note}: MISSING`];
    return [(statSync(path).mode & 0o777).toString(8).padStart(4, '0'), name, note];
  });
  return `files in ${dir}\n${indent(table(['mode', 'file', 'what'], rows))}`;
}

function indent(text: string): string {
  return text.replace(/^(?=.)/gm, '  ');
}

function crlLine(which: string, c: CrlSummary, now: Date): string {
  const days = Math.ceil((c.nextUpdate.getTime() - now.getTime()) / 86_400_000);
  const due = days < 0 ? 'STALE: gateways reject chains through this CA (CRL_STALE)' : `due in ${days} days`;
  return `  ${which}  #${c.number}  issued ${isoSeconds(c.thisUpdate)}  next update ${isoSeconds(c.nextUpdate)} (${due})  ${c.revoked} revoked\n`;
}

function summaryText(s: CaSummary): string {
  return `CA ${s.alg} in ${caPaths(s.dir).ca}\n\n${certLines('root CA', s.root)}\n${certLines('line CA', s.line)}\n`;
}

interface InitOptions extends StationCliOptions {
  org?: string;
  rootName?: string;
  lineName?: string;
  alg: 'ES256' | 'Ed25519';
  rootYears?: number;
  lineYears?: number;
}

function registerCa(provision: Command): void {
  const ca = provision.command('ca').description('the station certificate authority (root and line CA)');

  stationOptions(ca.command('init').description('create the root and line CAs (keys encrypted under the passphrases); refuses to overwrite'), { passphrases: true, root: true })
    .option('--org <name>', 'organisation (subject O) of the CAs and device certificates')
    .option('--root-name <name>', 'root CA common name (default "<org> Root CA")')
    .option('--line-name <name>', 'line CA common name (default "<org> Line CA")')
    .addOption(new Option('--alg <alg>', 'CA key algorithm').choices(['ES256', 'Ed25519']).default('ES256'))
    .option('--root-years <n>', 'root CA validity in years (default 30)', int('--root-years', 1, 100))
    .option('--line-years <n>', 'line CA validity in years (default 25)', int('--line-years', 1, 100))
    .action(
      runProvisionAction(async (_o: unknown, cmd: Command) => {
        const o = cmd.optsWithGlobals<InitOptions>();
        const dir = stationDir(o);
        const line = await linePassphrase(o, { confirm: true });
        const root = await rootPassphrase(o, { confirm: true, line });
        const s = await StationCa.init({
          dir,
          linePassphrase: line,
          rootPassphrase: root,
          alg: o.alg,
          ...(o.org === undefined ? {} : { org: o.org }),
          ...(o.rootName === undefined ? {} : { rootName: o.rootName }),
          ...(o.lineName === undefined ? {} : { lineName: o.lineName }),
          ...(o.rootYears === undefined ? {} : { rootYears: o.rootYears }),
          ...(o.lineYears === undefined ? {} : { lineYears: o.lineYears }),
        });
        out(`${summaryText(s)}\nCRLs\n${crlsText(dir)}\n${fileLines(dir)}`);
        out(`\nnext: move ${caPaths(dir).rootKey} to offline media (two people), then run \`packchain provision export\`\n`);
      }),
    );

  stationOptions(ca.command('show').description('the CAs, their CRLs and files (no passphrase needed)'))
    .option('--json', 'one JSON document')
    .action(
      runProvisionAction((_o: unknown, cmd: Command) => {
        const o = cmd.optsWithGlobals<StationCliOptions & { json?: boolean }>();
        const dir = stationDir(o);
        const s = StationCa.summary(dir);
        if (o.json === true) {
          out(`${JSON.stringify({ ...s, crls: readCrlSummaries(dir), rootKeyPresent: existsSync(caPaths(dir).rootKey) }, null, 2)}\n`);
          return;
        }
        out(`${summaryText(s)}\nCRLs\n${crlsText(dir)}\n${fileLines(dir)}`);
      }),
    );

  stationOptions(ca.command('crl').description('re-issue the line CRL (or, with --root, the root CRL) before its next update'), { passphrases: true, root: true })
    .option('--root', 'the root CRL (needs the root key and passphrase)')
    .action(
      runProvisionAction(async (_o: unknown, cmd: Command) => {
        const o = cmd.optsWithGlobals<StationCliOptions & { root?: boolean }>();
        const dir = stationDir(o);
        if (o.root === true) {
          const n = await refreshRootCrl(dir, await rootPassphrase(o));
          out(`root CRL #${n} issued\n${crlsText(dir)}`);
          return;
        }
        const station = await StationCa.open({ dir, passphrase: await linePassphrase(o) });
        const reg = await Registry.open(join(dir, REGISTRY_FILE));
        try {
          const { number } = await station.issueLineCrl(await reg.revokedCerts());
          out(`line CRL #${number} issued\n${crlsText(dir)}`);
        } finally {
          await reg.close();
        }
      }),
    );
}

function crlsText(dir: string): string {
  const c = readCrlSummaries(dir);
  const now = new Date();
  return crlLine('root', c.root, now) + crlLine('line', c.line, now);
}

function registerRevoke(provision: Command): void {
  stationOptions(provision.command('revoke').description('revoke the active certificate of a pack serial and issue a new line CRL'), { passphrases: true })
    .argument('<serial>', 'pack serial')
    .addOption(new Option('--reason <reason>', 'RFC 5280 revocation reason').choices(REVOCATION_REASONS).makeOptionMandatory())
    .option('--note <text>', 'free text kept in the registry with the revocation')
    .action(
      runProvisionAction(async (serial: string, _o: unknown, cmd: Command) => {
        const o = cmd.optsWithGlobals<StationCliOptions & { reason: string; note?: string }>();
        const reason = parseRevocationReason(o.reason);
        const dir = stationDir(o);
        const station = await StationCa.open({ dir, passphrase: await linePassphrase(o) });
        const reg = await Registry.open(join(dir, REGISTRY_FILE));
        try {
          const r = await revokeSerial(station, reg, serial, reason, o.note);
          const crl = station.crlSummaries().line;
          out(`revoked  ${serial}  certificate ${r.serialHex}  reason ${reason}\n`);
          out(`line CRL #${r.crlNumber}  next update ${isoSeconds(crl.nextUpdate)}  ${crl.revoked} revoked\n`);
          out('next: run `packchain provision export` and load the trust bundle on every gateway and the ledger\n');
        } finally {
          await reg.close();
        }
      }),
    );
}

function registerExport(provision: Command): void {
  stationOptions(provision.command('export').description('write the trust bundle (roots, line CAs, current CRLs) for gateways and the ledger'))
    .option('--out <file>', 'where to write it (default <dir>/trust-bundle.json)')
    .action(
      runProvisionAction(async (_o: unknown, cmd: Command) => {
        const o = cmd.optsWithGlobals<StationCliOptions & { out?: string }>();
        const dir = stationDir(o);
        const file = resolve(o.out ?? join(dir, 'trust-bundle.json'));
        const b = await readTrustBundle(dir);
        writeFileAtomic(file, b.text, 0o644);
        out(`trust bundle  ${file}\n`);
        out(`  SHA-256  ${createHash('sha256').update(b.text).digest('hex')}\n`);
        out(`  ${b.bundle.roots.length} root, ${b.bundle.intermediates.length} line CA, ${b.bundle.crls.length} CRLs\n`);
        const now = new Date();
        out(crlLine('root', b.crls.root, now) + crlLine('line', b.crls.line, now));
        for (const [which, c] of [['root', b.crls.root], ['line', b.crls.line]] as const) {
          if (c.nextUpdate.getTime() < now.getTime() + 14 * 86_400_000) {
            process.stderr.write(`provisioning: warning: the ${which} CRL's next update is ${isoSeconds(c.nextUpdate)}: run \`packchain provision ca crl${which === 'root' ? ' --root' : ''}\` and export again\n`);
          }
        }
      }),
    );
}

function registerQueries(provision: Command): void {
  stationOptions(provision.command('list').description('provisioning attempts, newest first (registry, read-only)'))
    .option('--serial <serial>', 'only this pack serial')
    .addOption(new Option('--result <result>', 'only this result').choices(['PASS', 'FAIL', 'PENDING']))
    .option('--since <time>', 'only attempts started at or after this ISO-8601 time', isoDate)
    .option('--limit <n>', 'at most n attempts (default 50)', int('--limit', 1, 1_000_000))
    .option('--json', 'a JSON array of the records')
    .action(
      runProvisionAction(async (_o: unknown, cmd: Command) => {
        const o = cmd.optsWithGlobals<StationCliOptions & { serial?: string; result?: 'PASS' | 'FAIL' | 'PENDING'; since?: Date; limit?: number; json?: boolean }>();
        const reg = await Registry.open(join(stationDir(o), REGISTRY_FILE), { readOnly: true });
        const limit = o.limit ?? 50;
        const rows = await reg.list({
          ...(o.serial === undefined ? {} : { serial: o.serial }),
          ...(o.result === undefined ? {} : { result: o.result }),
          ...(o.since === undefined ? {} : { since: o.since }),
          limit: limit + 1,
        });
        await reg.close();
        const shown = rows.slice(0, limit);
        if (o.json === true) out(`${JSON.stringify(shown, null, 2)}\n`);
        else out(printAttempts(shown));
        if (rows.length > limit) process.stderr.write(`provisioning: showing the newest ${limit}; use --limit for more\n`);
      }),
    );

  stationOptions(provision.command('show').description('every attempt for one pack serial, with its certificate (registry, read-only)'))
    .argument('<serial>', 'pack serial')
    .option('--json', 'one JSON document, certificates as PEM')
    .action(
      runProvisionAction(async (serial: string, _o: unknown, cmd: Command) => {
        const o = cmd.optsWithGlobals<StationCliOptions & { json?: boolean }>();
        const reg = await Registry.open(join(stationDir(o), REGISTRY_FILE), { readOnly: true });
        const history = await reg.history(serial);
        await reg.close();
        if (history.length === 0) throw new ProvisioningError('NOT_FOUND', `provisioning: the registry does not know pack serial ${serial}`);
        out(o.json === true ? `${JSON.stringify({ serial, attempts: history }, null, 2)}\n` : printHistory(serial, history));
      }),
    );
}

/** Adds `ca init|show|crl`, `revoke`, `export`, `list` and `show` to the `provision` command. */
export function registerProvisionCa(provision: Command): void {
  registerCa(provision);
  registerRevoke(provision);
  registerExport(provision);
  registerQueries(provision);
}
