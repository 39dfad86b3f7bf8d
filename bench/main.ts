/**
 * `npm run bench`: protocol throughput, each figure as a ratio to raw crypto.verify measured in the
 * same run (bench/harness.ts). Later issues add ingest, sync, restart and history figures here.
 */
import { cpus } from 'node:os';
import { baselineVerifyRate, formatTable, type Result } from './harness.js';
import { identityBenchmarks, identityFixture, protocolBenchmarks } from './protocol.js';
import { ingestBenchmarks } from './gateway-ingest.js';
import { gatewayStoreBenchmarks } from './gateway-store.js';
import { benchProvision } from './provision.js';

const baseline = baselineVerifyRate();
const results: Result[] = [];
const fixture = await identityFixture();
for (const r of [...protocolBenchmarks(), ...identityBenchmarks(fixture)]) {
  results.push(r);
  process.stderr.write(`  ${r.name}: ${Math.round(r.opsPerSec)}/s\n`);
}
for (const r of [...(await gatewayStoreBenchmarks()), ...(await ingestBenchmarks())]) {
  results.push(r);
  process.stderr.write(`  ${r.name}: ${Math.round(r.opsPerSec)}/s ${r.note ?? ''}\n`);
}
for (const r of await benchProvision()) {
  results.push(r);
  process.stderr.write(`  ${r.name}: ${r.note ?? ''}\n`);
}
const cpu = cpus()[0]?.model ?? 'unknown CPU';
process.stdout.write(`packchain benchmarks — Node ${process.version}, ${cpus().length} × ${cpu}\n\n`);
process.stdout.write(formatTable(baseline, results) + '\n');
