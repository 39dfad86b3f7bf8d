/**
 * `npm run bench`: every module's benchmarks, each figure as a ratio to raw crypto.verify measured in
 * the same run just before its section (bench/harness.ts), printed and written to
 * docs/performance.md with the machine they ran on. A module adds its figures with one line in
 * `sections` (a title and a function returning `Result`s). BENCH_LARGE=1 adds the 10 M-entry store.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { baselineVerifyRate, describeMachine, formatTable, renderReport, repoRoot, type Result, type Section } from './harness.js';
import { identityBenchmarks, identityFixture, protocolBenchmarks } from './protocol.js';
import { ingestBenchmarks } from './gateway-ingest.js';
import { ptyIngestBenchmarks } from './ingest-pty.js';
import { gatewayStoreBenchmarks } from './gateway-store.js';
import { benchProvision } from './provision.js';
import { ledgerBenchmarks } from './ledger-catchup.js';

const sections: Section[] = [
  { title: 'Protocol', run: async () => [...protocolBenchmarks(), ...identityBenchmarks(await identityFixture())] },
  { title: 'Gateway log store (bench/gateway-store.ts)', run: () => gatewayStoreBenchmarks() },
  { title: 'Gateway ingest, in-memory source (bench/gateway-ingest.ts)', run: () => ingestBenchmarks() },
  { title: 'Gateway ingest from 20 ptys (bench/ingest-pty.ts)', run: () => ptyIngestBenchmarks() },
  { title: 'Provisioning station (bench/provision.ts)', run: () => benchProvision() },
  { title: 'Ledger: backlog catch-up and history (bench/ledger-catchup.ts)', run: (baseline) => ledgerBenchmarks(baseline) },
];

const machine = describeMachine();
const started = process.hrtime.bigint();
const done: { title: string; baseline: number; results: Result[] }[] = [];
for (const s of sections) {
  // A baseline per section: on a shared machine what other jobs leave of the cores drifts.
  const baseline = baselineVerifyRate();
  process.stderr.write(`${s.title} (baseline ${Math.round(baseline)}/s)\n`);
  const results: Result[] = [];
  for (const r of await s.run(baseline)) {
    results.push(r);
    process.stderr.write(`  ${r.name}: ${Math.round(r.opsPerSec)}/s ${r.note ?? ''}\n`);
  }
  done.push({ title: s.title, baseline, results });
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
process.stdout.write(`packchain benchmarks — Node ${machine.node}, ${machine.cores} × ${machine.cpu}, ${machine.ramGiB} GiB\n`);
for (const d of done) process.stdout.write(`\n## ${d.title}\n\n${formatTable(d.baseline, d.results)}\n`);
const out = join(repoRoot(), 'docs', 'performance.md');
writeFileSync(out, renderReport(machine, done, seconds));
process.stdout.write(`\nwritten: ${out}\n`);
