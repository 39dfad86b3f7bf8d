/**
 * The hostile-input suite's verdict and printout: `checkFigures` lists every check a run failed
 * (the vitest test asserts it is empty; `npm run hostile` exits 1 on any), `formatFigures` prints
 * the figures issue 8 item 3 asks for as plain text (docs/security.md quotes it).
 */
import type { LedgerFigures } from './ledger.js';
import type { HostileFigures } from './run.js';

export interface Bounds {
  /** Heap growth allowed between the start and the end of the run (after a full GC). */
  readonly maxHeapGrowthMiB: number;
}

export function checkFigures(f: HostileFigures, b: Bounds): string[] {
  const out: string[] = [];
  if (f.crashes.total !== 0) out.push(`crashes: ${JSON.stringify(f.crashes)}`);
  if (f.forgeriesAccepted !== 0) out.push(`forgeries accepted: ${f.forgeriesAccepted}: ${f.forgeryDetails.join('; ')}`);
  if (f.genuine.missing !== 0 || f.genuine.unacked !== 0) out.push(`genuine frames: ${f.genuine.sent} sent, ${f.genuine.stored} stored, ${f.genuine.unacked} never acked`);
  if (f.genuine.storedTwice !== 0) out.push(`genuine frames stored twice: ${f.genuine.storedTwice}`);
  for (const s of f.security.shortfalls) out.push(`security: ${s}`);
  for (const s of f.security.failures) out.push(`security: ${s}`);
  const growth = f.memory.after.heapUsedMiB - f.memory.before.heapUsedMiB;
  if (growth > b.maxHeapGrowthMiB) out.push(`heap grew ${growth.toFixed(1)} MiB (bound ${b.maxHeapGrowthMiB})`);
  if (!f.log.verifyOk) out.push(`gateway verify: ${f.log.verifyProblems.join('; ')}`);
  return out;
}

/** The tampered-store checks that failed (verifyLog must pinpoint the tampered entry and only it). */
export function checkTamper(f: HostileFigures): string[] {
  return f.log.tamper
    .filter((t) => !t.ok)
    .map((t) => `tampered store (${t.how}) at entry ${t.index}: verifyLog reported ${t.codes.join(',') || 'nothing'} for it and ${t.elsewhere} problems at other entries (${t.problems.join('; ') || 'no problems'})`);
}

const table = (rec: Readonly<Record<string, number>>, indent = '  '): string =>
  Object.entries(rec)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([k, v]) => `${indent}${k.padEnd(34)} ${String(v).padStart(9)}`)
    .join('\n');

export function formatFigures(f: HostileFigures): string {
  const m = f.memory;
  return [
    `inputs                 ${f.inputs} (seed ${f.seed}) in ${f.seconds} s = ${f.inputsPerSecond} inputs/s`,
    `crashes                ${f.crashes.total} (handler errors ${f.crashes.handlerErrors}, internal ${f.crashes.internal}, worker failures ${f.crashes.workerFailures}, uncaught ${f.crashes.uncaught}, stalls ${f.crashes.stalls})`,
    `forgeries accepted     ${f.forgeriesAccepted}`,
    `genuine frames         ${f.genuine.sent} sent interleaved, ${f.genuine.stored} stored exactly once, ${f.genuine.storedTwice} twice, ${f.genuine.unacked} unacked (resend rounds ${f.genuine.resendRounds})`,
    `duplicates             ${f.duplicates} (resends and replays: acked again, stored once)`,
    `log                    ${f.log.size} entries; gateway verify ${f.log.verifyOk ? 'clean' : `FAILED: ${f.log.verifyProblems.join('; ')}`}`,
    `tampered store         ${f.log.tamper.map((t) => `${t.how} at entry ${t.index} -> ${t.codes.join(',') || 'NOT REPORTED'}${t.elsewhere > 0 ? ` (+${t.elsewhere} problems at other entries)` : ''}`).join('; ')}`,
    `memory before          rss ${m.before.rssMiB} MiB, heap ${m.before.heapUsedMiB} MiB`,
    `memory after           rss ${m.after.rssMiB} MiB, heap ${m.after.heapUsedMiB} MiB (peak rss ${m.peakRssMiB} MiB)`,
    '',
    `rejects by reason (pipeline quarantine, ${f.rejectsTotal} in all):`,
    table(f.rejects),
    '',
    'transport rejects by reason (every dropped unit counted):',
    table(f.transportRejects),
    '',
    'inputs by kind:',
    table(f.byKind),
    '',
    'security cases (runs):',
    table(f.security.runs),
    'security codes expected (at least):',
    table(f.security.expected),
  ].join('\n');
}

/** The ledger-side checks that failed. */
export function checkLedger(l: LedgerFigures): string[] {
  const out = l.cases.filter((c) => !c.ok).map((c) => `ledger: ${c.name}: expected ${c.expected.join(' or ')}, got ${c.got}`);
  if (l.crashes !== 0) out.push(`ledger: ${l.crashes} crashes: ${l.crashDetails.join('; ')}`);
  if (!l.stateUnchanged) out.push('ledger: the accepted state changed');
  if (!l.historyUnchanged) out.push("ledger: the pack's history changed");
  return out;
}

export function formatLedger(l: LedgerFigures, seconds: number): string {
  return [
    `ledger (embedded store), ${seconds.toFixed(1)} s: crashes ${l.crashes}; accepted state ${l.stateUnchanged ? 'unchanged' : 'CHANGED'}; pack history ${l.historyUnchanged ? 'unchanged' : 'CHANGED'}; ${l.alerts} alerts, ${l.evidence} evidence records`,
    ...l.cases.map((c) => `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(62)} ${c.got}`),
    `fuzzed upload bodies (${l.fuzz.bodies}) and Authorization headers (${l.fuzz.headers}), results by code:`,
    table(l.fuzz.byCode),
  ].join('\n');
}
