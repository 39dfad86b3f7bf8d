/**
 * The fault harness's verdict and printout: `checkFigures` lists every way a run failed (a frame
 * lost, duplicated or unknown, a fault not applied as planned, a torn tail not cut, a restart the
 * harness did not cause, a dirty verify, an unwitnessed checkpoint, fork evidence); `formatFigures`
 * prints the figures as docs/faults.md shows them.
 */
import type { FaultFigures } from './run.js';

export function checkFigures(f: FaultFigures): string[] {
  const p: string[] = [];
  const fr = f.frames;
  if (fr.produced === 0) p.push('no frame was produced');
  if (fr.missing > 0) p.push(`${fr.missing} produced frames missing from the ledger`);
  if (fr.duplicates > 0) p.push(`${fr.duplicates} duplicate frames in the ledger`);
  if (fr.unknown > 0) p.push(`${fr.unknown} ledger frames no pack produced`);
  if (fr.inLedger !== fr.produced) p.push(`ledger holds ${fr.inLedger} of ${fr.produced} produced frames`);
  if (fr.notWitnessed > 0) p.push(`${fr.notWitnessed} ledger rows not witnessed`);
  if (fr.inGatewayLog !== fr.produced) p.push(`gateway log holds ${fr.inGatewayLog} entries for ${fr.produced} produced frames`);
  if (fr.logMismatches > 0) p.push(`${fr.logMismatches} gateway log entries differ from the ground truth`);
  if (fr.logDuplicates > 0) p.push(`${fr.logDuplicates} frames twice in the gateway log`);
  if (f.discarded > 0) p.push(`${f.discarded} frames discarded by the packs (ring overwrite or wipe)`);
  const want: Record<string, number> = { kill: f.plan.kills, 'torn-tail': f.plan.tornTails, unplug: f.plan.unplugs, 'ble-drop': f.plan.bleDrops, outage: f.plan.outageDeviceMs > 0 ? 1 : 0 };
  for (const [k, n] of Object.entries(want)) if ((f.applied[k] ?? 0) !== n) p.push(`${k}: ${f.applied[k] ?? 0} applied, ${n} planned`);
  if (f.plan.outageDeviceMs > 0 && f.outage.deviceMs < f.plan.outageDeviceMs) p.push(`the outage covered ${f.outage.deviceMs} device ms, less than ${f.plan.outageDeviceMs}`);
  const tornRestarts = f.restarts.filter((r) => r.cause === 'torn-tail');
  const uncut = tornRestarts.filter((r) => r.cutBytes === 0).length;
  if (uncut > 0) p.push(`${uncut} torn tails not cut on the next start`);
  if (f.unexpectedExits.length > 0) p.push(`${f.unexpectedExits.length} gateway exits or failed starts the harness did not cause: ${f.unexpectedExits[0] ?? ''}`);
  if (f.restarts.length !== f.plan.kills + f.plan.tornTails) p.push(`${f.restarts.length} restarts for ${f.plan.kills + f.plan.tornTails} kills`);
  if (f.checks.sigtermExit !== 0) p.push(`gateway exit on SIGTERM: ${f.checks.sigtermExit}`);
  if (f.checks.verify.code !== 0 || !f.checks.verify.output.startsWith('gateway verify: OK')) p.push(`gateway verify: exit ${f.checks.verify.code}: ${f.checks.verify.output.split('\n')[0] ?? ''}`);
  const c = f.checks.cosigned;
  if (!c.ok) p.push(`cosigned checkpoint does not verify with the ledger as witness: ${c.error ?? ''}`);
  else if (c.size !== c.logSize) p.push(`cosigned checkpoint covers ${c.size} of ${c.logSize} entries`);
  if (f.checks.evidence.code !== 0) p.push(`ledger evidence --check: exit ${f.checks.evidence.code}: ${f.checks.evidence.output}`);
  return p;
}

const s1 = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

function quantiles(xs: readonly number[]): string {
  if (xs.length === 0) return '—';
  const a = [...xs].sort((x, y) => x - y);
  const q = (p: number): number => a[Math.min(a.length - 1, Math.floor(p * a.length))] ?? 0;
  return `min ${s1(a[0] ?? 0)}, median ${s1(q(0.5))}, p95 ${s1(q(0.95))}, max ${s1(a[a.length - 1] ?? 0)}`;
}

export function formatFigures(f: FaultFigures): string {
  const pl = f.plan;
  const fr = f.frames;
  const byCause = (c: string): number[] => f.restarts.filter((r) => r.cause === c).map((r) => r.recoveryMs);
  const cut = f.restarts.filter((r) => r.cause === 'torn-tail');
  const skipped = Object.entries(f.skipped).filter(([, n]) => n > 0);
  return [
    `packs                 ${pl.serial + pl.ble} (${pl.serial} serial, ${pl.ble} BLE), a frame every ${pl.periodMs / 1000} device s, speed ×${pl.speed}, seed ${pl.seed}`,
    `faults applied        kill -9 ${f.applied.kill ?? 0}, torn tail ${f.applied['torn-tail'] ?? 0}, unplug ${f.applied.unplug ?? 0}, BLE drop ${f.applied['ble-drop'] ?? 0}, upstream outage ${f.applied.outage ?? 0}${skipped.length > 0 ? ` (hw-sim skipped: ${skipped.map(([k, n]) => `${k} ${n}`).join(', ')})` : ''}`,
    `frames                produced ${fr.produced}, in ledger ${fr.inLedger}, duplicates ${fr.duplicates}, missing ${fr.missing}, unknown ${fr.unknown}, not witnessed ${fr.notWitnessed}`,
    `gateway log           ${fr.inGatewayLog} entries, ${fr.logMismatches} differ from the ground truth, ${fr.logDuplicates} twice`,
    `resends               ${f.resends} frame transmissions repeated by the packs; ${f.discarded} frames discarded`,
    `upstream outage       ${(f.outage.deviceMs / 60_000).toFixed(1)} device minutes in ${s1(f.outage.wallMs)} wall, ${f.outage.refused} connections refused, backlog ${f.outage.backlog} entries synced ${s1(f.outage.catchUpMs)} after it ended`,
    `max sync lag          ${f.maxLag.entries} entries, ${f.maxLag.seconds.toFixed(1)} s`,
    `gateway restarts      ${f.restarts.length} (by the harness as systemd; ${f.unexpectedExits.length} unexpected)`,
    `  after kill -9       ${quantiles(byCause('kill'))}`,
    `  after power cut     ${quantiles(byCause('torn-tail'))}; torn tails cut ${cut.filter((r) => r.cutBytes > 0).length}/${cut.length} (${cut.reduce((n, r) => n + r.cutBytes, 0)} bytes)`,
    `memory (max RSS)      gateway ${f.memory.gatewayMaxRssMiB.toFixed(0)} MiB, ledger ${f.memory.ledgerMaxRssMiB.toFixed(0)} MiB (${f.memory.samples} samples); harness ${f.memory.harnessRssMiB.toFixed(0)} MiB`,
    `checks                SIGTERM exit ${f.checks.sigtermExit}; ${f.checks.verify.output.split('\n')[0] ?? ''}`,
    `                      cosigned checkpoint: ${f.checks.cosigned.ok ? `size ${f.checks.cosigned.size} of ${f.checks.cosigned.logSize}, witnessed by ${f.checks.cosigned.witnesses.join(', ')}` : `FAILED ${f.checks.cosigned.error ?? ''}`}`,
    `                      ledger evidence --check: exit ${f.checks.evidence.code}, ${f.checks.evidence.output.split('\n')[0] ?? ''}`,
    `wall time             ${s1(f.wallMs)}`,
  ].join('\n');
}
