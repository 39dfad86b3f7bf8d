/**
 * The log commands (docs/gateway.md "Reading the log"): `gateway history PACK`, `gateway verify`,
 * `gateway prove PACK COUNTER` and `gateway verify-proof FILE`. The first three open the log
 * read-only — no lock, nothing written — so they run beside a live `gateway run`. Exit statuses:
 * 0 success; `verify` 1 when anything is tampered, `verify-proof` 1 when the bundle fails a check;
 * 2 for a usage error (bad arguments); otherwise the sysexits of cli/gateway.ts.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { isProtocolError, parseVerifierKey, verifyProofBundle, type NoteVerifier, type TrustStore } from '../protocol/index.js';
import { CertStore, formatHistory, type GatewayConfig, GatewayError, type HistoryFormat, historyRows, loadConfig, loadKeyFile, loadTrustBundle, loadVerifierKey, LogStore, parseFields, proveFrame, readCosigned, verifyLog, type VerifyLogReport } from '../gateway/index.js';
import { configOption, configPath, runGatewayAction, type ConfigOption } from './gateway.js';

export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

const out = (text: string): void => {
  process.stdout.write(text);
};

/** Usage errors of these commands exit 2 (commander's own parse errors included). */
function usageExit(cmd: Command): Command {
  return cmd.exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
  });
}

const isoTime = (flag: string) => (v: string): number => {
  const t = Date.parse(v);
  if (!/^\d{4}-\d{2}-\d{2}/.test(v) || Number.isNaN(t)) throw new InvalidArgumentError(`${flag} expects an ISO 8601 date or time, e.g. 2026-03-01 or 2026-03-01T12:00:00Z`);
  return t;
};

async function openLog(config: GatewayConfig): Promise<{ store: LogStore; certs: CertStore }> {
  const store = await LogStore.open({ dir: join(config.dataDir, 'log'), readOnly: true });
  return { store, certs: CertStore.open(join(config.dataDir, 'certs'), false) };
}

interface HistoryCliOptions extends ConfigOption {
  since?: number;
  until?: number;
  fields?: string;
  format: HistoryFormat;
}

function registerHistory(gateway: Command): void {
  usageExit(configOption(gateway.command('history').description("one pack's frames from the local log, signatures re-verified, with the checkpoint covering each").argument('<pack>', 'pack serial')))
    .addOption(new Option('--since <iso>', 'received at or after').argParser(isoTime('--since')))
    .addOption(new Option('--until <iso>', 'received before').argParser(isoTime('--until')))
    .option('--fields <list>', 'comma-separated columns (default all): index,receivedAt,source,counter,deviceTime,socPct,sohPct,voltageV,currentA,cellMinV,cellMaxV,tempMinC,tempMaxC,cycles,alarms,signature,checkpoint')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'csv', 'json']).default('table'))
    .action(
      runGatewayAction(async (pack: string, o: HistoryCliOptions) => {
        const fields = parseFields(o.fields);
        const { store, certs } = await openLog(await loadConfig(configPath(o)));
        try {
          const rows = await historyRows(store, certs, pack, { ...(o.since === undefined ? {} : { since: o.since }), ...(o.until === undefined ? {} : { until: o.until }) });
          out(formatHistory(rows, fields, o.format));
        } finally {
          await store.close();
        }
      }),
    );
}

interface VerifyCliOptions extends ConfigOption {
  gatewayKey?: string;
  json?: boolean;
}

function formatReport(r: VerifyLogReport): string {
  const warn = Object.entries(r.chainWarnings).map(([c, n]) => `${c} ${n}`);
  const facts = [
    `log ${r.origin}: entries ${r.firstIndex}..${r.size - 1} (${r.entriesChecked} re-hashed)`,
    `${r.checkpointsChecked} checkpoints (signature, root recomputed from the leaves, consistency with the previous)`,
    `${r.framesVerified} frame signatures re-verified${r.framesWithoutChain > 0 ? `, ${r.framesWithoutChain} without a stored certificate (not checked)` : ''}`,
    ...(warn.length > 0 ? [`certificate chains at receive time: ${warn.join(', ')} (warnings: not tampering)`] : []),
  ];
  if (r.ok) return `gateway verify: OK\n${facts.map((f) => `  ${f}`).join('\n')}\n`;
  const first = r.problems[0];
  const where = first?.index !== undefined ? `entry ${first.index}` : `checkpoint ${first?.checkpoint ?? '?'}`;
  return [
    `gateway verify: TAMPERED: first bad ${where}: ${first?.code ?? '?'}: ${first?.what ?? ''}`,
    ...facts.map((f) => `  ${f}`),
    `  ${r.problemCount} problems${r.problemCount > r.problems.length ? ` (first ${r.problems.length} listed)` : ''}:`,
    ...r.problems.map((p) => `    ${p.index !== undefined ? `entry ${p.index}` : `checkpoint ${p.checkpoint ?? '?'}`}: ${p.code}: ${p.what}`),
    '',
  ].join('\n');
}

async function gatewayVerifier(config: GatewayConfig, given: string | undefined): Promise<NoteVerifier> {
  if (given !== undefined) return loadVerifierKey(given);
  return parseVerifierKey((await loadKeyFile(config.keyFile, config.name)).verifierKey);
}

function registerVerify(gateway: Command): void {
  usageExit(configOption(gateway.command('verify').description('re-hash every leaf, recompute the tree against every signed checkpoint, re-verify every frame signature; exit 0 OK, 1 tampered, 2 usage')))
    .option('--gateway-key <key>', "the gateway's verifier key text, or a file holding it (default: from the config's key file)")
    .option('--json', 'print the report as JSON')
    .action(
      runGatewayAction(async (o: VerifyCliOptions) => {
        const config = await loadConfig(configPath(o));
        const verifier = await gatewayVerifier(config, o.gatewayKey);
        let trust: TrustStore | undefined;
        try {
          trust = await loadTrustBundle(config.trustBundle);
        } catch (e) {
          process.stderr.write(`gateway verify: ${(e as Error).message}; certificate chains are not judged\n`);
        }
        const { store, certs } = await openLog(config);
        try {
          const r = await verifyLog({ store, certs, verifier, ...(trust ? { trust } : {}) });
          out(o.json === true ? `${JSON.stringify(r, null, 2)}\n` : formatReport(r));
          if (!r.ok) process.exitCode = EXIT_FAILED;
        } finally {
          await store.close();
        }
      }),
    );
}

const counterArg = (v: string): number => {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('COUNTER must be a non-negative integer');
  return n;
};

interface ProveCliOptions extends ConfigOption {
  out?: string;
}

function registerProve(gateway: Command): void {
  usageExit(
    configOption(
      gateway
        .command('prove')
        .description('write the offline proof bundle (c2sp.org/tlog-proof) of one frame: leaf, device chain, inclusion proof, signed checkpoint')
        .argument('<pack>', 'pack serial')
        .argument('<counter>', 'frame counter', counterArg),
    ),
  )
    .option('--out <file>', 'write the bundle here (default: stdout)')
    .action(
      runGatewayAction(async (pack: string, counter: number, o: ProveCliOptions) => {
        const config = await loadConfig(configPath(o));
        const { store, certs } = await openLog(config);
        try {
          const cosigned = await readCosigned(config.dataDir, store.origin, await gatewayVerifier(config, undefined));
          const p = await proveFrame(store, certs, pack, counter, cosigned);
          if (o.out === undefined) out(p.bundle);
          else {
            await writeFile(o.out, p.bundle, { mode: 0o644 });
            process.stderr.write(`wrote ${o.out}: ${pack} #${counter}, entry ${p.index}, checkpoint of size ${p.checkpointSize}${p.witnessed ? ', cosigned by the ledger' : ''}\n`);
          }
        } finally {
          await store.close();
        }
      }),
    );
}

interface VerifyProofCliOptions {
  trust: string;
  gatewayKey: string[];
  witnessKey: string[];
  json?: boolean;
}

function registerVerifyProof(gateway: Command): void {
  usageExit(gateway.command('verify-proof').description('check a proof bundle offline against the factory trust bundle and a gateway verifier key; exit 0 valid, 1 invalid, 2 usage').argument('<file>', 'the .tlog-proof file'))
    .requiredOption('--trust <bundle>', 'trust bundle file (packchain provision export)')
    .option('--gateway-key <key>', "a trusted gateway's verifier key text, or a file holding it (repeatable)", (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--witness-key <key>', "a witness's (the ledger's) verifier key text or file; the bundle must then carry its cosignature (repeatable: every one must have cosigned)", (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--json', 'print the result as JSON')
    .action(
      runGatewayAction(async (file: string, o: VerifyProofCliOptions) => {
        if (o.gatewayKey.length === 0) throw new GatewayError('USAGE', 'gateway: verify-proof: expected at least one --gateway-key (the verifier key `gateway init` printed)');
        const logs = await Promise.all(o.gatewayKey.map((k) => loadVerifierKey(k)));
        const witnesses = await Promise.all(o.witnessKey.map((k) => loadVerifierKey(k)));
        const trust = await loadTrustBundle(o.trust);
        let text: string;
        try {
          text = await readFile(file, 'utf8');
        } catch (e) {
          throw new GatewayError('USAGE', `gateway: verify-proof: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
        }
        let v;
        try {
          v = verifyProofBundle(text, { trust, logs, witnesses, requiredWitnesses: witnesses.length });
        } catch (e) {
          if (!isProtocolError(e)) throw e;
          throw new GatewayError('PROOF_INVALID', `gateway: verify-proof: ${file}: INVALID: ${e.code}: ${e.message}`, { cause: e });
        }
        const f = v.frame;
        const summary = {
          valid: true,
          pack: f.serial,
          counter: f.counter,
          receivedAt: new Date(v.leaf.receivedAt).toISOString(),
          source: v.leaf.source,
          deviceTime: new Date(f.time).toISOString(),
          origin: v.origin,
          index: v.index,
          checkpointSize: v.treeSize,
          witnesses: v.witnesses.map((w) => ({ name: w.name, cosignedAt: w.timestamp === undefined ? null : new Date(w.timestamp * 1000).toISOString() })),
          certificate: v.device.issuerChain.map((i) => i.subject),
          fields: { socPct: f.soc / 10, sohPct: f.soh / 10, voltageV: f.voltage / 1000, currentA: f.current / 1000, tempMinC: f.tempMin / 10, tempMaxC: f.tempMax / 10, cycles: f.cycles, alarms: f.alarms },
        };
        if (o.json === true) {
          out(`${JSON.stringify(summary, null, 2)}\n`);
          return;
        }
        out(
          [
            `VALID: pack ${f.serial} frame #${f.counter}`,
            `  signed by the pack's certified key (issuers: ${summary.certificate.join(' <- ')})`,
            `  received ${summary.receivedAt} via ${v.leaf.source}; device time ${summary.deviceTime}`,
            `  logged by ${v.origin} at index ${v.index}, in its signed checkpoint of size ${v.treeSize}`,
            ...summary.witnesses.map((w) => `  witnessed by ${w.name}${w.cosignedAt === null ? '' : ` at ${w.cosignedAt}`}`),
            `  SoC ${summary.fields.socPct} %  SoH ${summary.fields.sohPct} %  ${summary.fields.voltageV} V  ${summary.fields.currentA} A  ${summary.fields.tempMinC}..${summary.fields.tempMaxC} °C  cycles ${f.cycles}  alarms ${f.alarms}`,
            '',
          ].join('\n'),
        );
      }),
    );
}

export function registerLogCommands(gateway: Command): void {
  registerHistory(gateway);
  registerVerify(gateway);
  registerProve(gateway);
  registerVerifyProof(gateway);
}
