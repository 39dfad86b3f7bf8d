/**
 * `npm run hostile` (issue 8 item 3): the full hostile-input suite — by default 1,000,000 inputs,
 * seed 8 — and its figures: crashes, forgeries accepted, genuine frames stored exactly once,
 * rejects by reason, memory before and after, inputs/s, the security cases and the tampered-store
 * checks; then the ledger side (impersonation, fuzzed upload bodies and headers, fork, tampered
 * uploads). Options: --count N, --seed S, --workers W, --ledger-bodies N (fuzzed bodies and as many
 * headers, default 5000), --json (the figures as JSON). Exit code 0
 * when every check holds, 1 otherwise. docs/security.md shows a run's output.
 */
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { runLedgerHostile } from './ledger.js';
import { checkFigures, checkLedger, checkTamper, formatFigures, formatLedger } from './report.js';
import { runHostile } from './run.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '1000000' },
    seed: { type: 'string', default: '8' },
    workers: { type: 'string', default: String(Math.max(1, availableParallelism())) },
    json: { type: 'boolean', default: false },
    'ledger-bodies': { type: 'string', default: '5000' },
  },
});
const count = Number(values.count);
const seed = Number(values.seed);
const workers = Number(values.workers);
if (!Number.isSafeInteger(count) || count < 1 || !Number.isSafeInteger(seed) || !Number.isSafeInteger(workers) || workers < 0) {
  console.error('hostile: --count and --seed must be positive integers, --workers a non-negative integer');
  process.exit(2);
}
console.log(`hostile: ${count} inputs, seed ${seed}, ${workers} verify workers; node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} × ${availableParallelism()}`);
const figures = await runHostile({ count, seed, workers, progress: (l) => { console.log(l); } });
const ledgerBodies = Number(values['ledger-bodies']);
const t = performance.now();
const ledger = await runLedgerHostile({ seed, bodies: ledgerBodies, headers: ledgerBodies });
const ledgerSeconds = (performance.now() - t) / 1000;
const problems = [...checkFigures(figures, { maxHeapGrowthMiB: 64 }), ...checkTamper(figures), ...checkLedger(ledger)];
console.log(values.json ? JSON.stringify({ gateway: figures, ledger }, null, 2) : `${formatFigures(figures)}\n\n${formatLedger(ledger, ledgerSeconds)}`);
if (problems.length > 0) {
  console.log(`\nFAILED:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  process.exitCode = 1;
} else console.log('\nall checks hold');
