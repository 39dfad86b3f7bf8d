/**
 * `packchain gateway init|status` as an operator runs them: real processes (cli/main.ts), real
 * files, and a real HTTP endpoint (gateway/ops/http.ts in this process) for `status`. Checks what
 * the operator sees (paths, verifier key, tables), the file modes, that no private key reaches the
 * terminal, and that every refusal is one `gateway: CODE: …` line with its own exit status.
 * Imports concrete gateway files (gateway/index.ts does not export them yet).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseVerifierKey } from '../protocol/index.js';
import { GatewayMetrics, loadConfig, loadKeyFile, OpsServer, type StatusSnapshot } from '../gateway/index.js';
import { sampleSnapshot } from '../gateway/ops/ops-testkit.js';

const root = resolve(import.meta.dirname, '..');
/** Each run starts Node + tsx and loads the modules (1–3 s on a busy 2-core machine). */
const SLOW = 120_000;
const tmp = mkdtempSync(join(tmpdir(), 'gateway-cli-'));
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function gateway(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'cli/main.ts'), 'gateway', ...args], {
    cwd: root,
    env: { ...process.env, PACKCHAIN_GATEWAY_CONFIG: '', PACKCHAIN_GATEWAY_URL: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((done) => child.on('close', (code) => {
    done({ code, out, err });
  }));
}

function expectRefusal(r: Run, code: string, exit: number): void {
  expect(r.err).toMatch(new RegExp(`^gateway: ${code}: `));
  expect(r.err.trim().split('\n')).toHaveLength(1);
  expect(r.code).toBe(exit);
}

describe('packchain gateway init', () => {
  const config = join(tmp, 'etc/gateway.yaml');
  let first: Run;
  beforeAll(async () => {
    first = await gateway(['init', '--config', config, '--name', 'line-3-gw1', '--data-dir', join(tmp, 'data')]);
  }, SLOW);

  it('writes the config and a 0600 key, prints the paths and the verifier key, never the private key', async () => {
    expect(first.err).toBe('');
    expect(first.code).toBe(0);
    const lines = first.out.trim().split('\n');
    expect(lines[0]).toBe(`wrote ${config}  (edit transports.serial.ports / transports.ble before the first start)`);
    const vkey = lines[lines.length - 1] ?? '';
    expect(parseVerifierKey(vkey).name).toBe('packchain.gateway/line-3-gw1');
    expect(first.out).not.toContain('PRIVATE+KEY');
    const c = await loadConfig(config);
    expect(statSync(c.keyFile).mode & 0o777).toBe(0o600);
    expect((await loadKeyFile(c.keyFile, c.name)).verifierKey).toBe(vkey);
    expect(readFileSync(config, 'utf8')).not.toContain('PRIVATE+KEY');
  });

  it('run again › refuses with INIT_EXISTS (exit 73) and leaves both files as they were', async () => {
    const key = readFileSync(join(tmp, 'etc/gateway.key'), 'utf8');
    const r = await gateway(['init', '--name', 'other'], { PACKCHAIN_GATEWAY_CONFIG: config });
    expectRefusal(r, 'INIT_EXISTS', 73);
    expect(readFileSync(join(tmp, 'etc/gateway.key'), 'utf8')).toBe(key);
  }, SLOW);

  it('with --json › prints the result as one JSON document', async () => {
    const r = await gateway(['init', '--config', join(tmp, 'j/gw.yaml'), '--name', 'gw-json', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ configPath: join(tmp, 'j/gw.yaml'), keyFile: join(tmp, 'j/gateway.key'), origin: 'packchain.gateway/gw-json', verifierKey: expect.stringMatching(/^packchain\.gateway\/gw-json\+[0-9a-f]{8}\+/) as unknown });
  }, SLOW);

  it('with an invalid name › refuses with CONFIG (exit 78) and writes nothing', async () => {
    const r = await gateway(['init', '--config', join(tmp, 'bad/gw.yaml'), '--name', 'no spaces']);
    expectRefusal(r, 'CONFIG', 78);
    expect(() => statSync(join(tmp, 'bad'))).toThrow();
  }, SLOW);
});

describe('packchain gateway status', () => {
  let server: OpsServer;
  let snapshot: StatusSnapshot = sampleSnapshot();
  beforeAll(async () => {
    server = await OpsServer.start({ listen: { host: '127.0.0.1', port: 0 }, snapshot: () => snapshot, metrics: new GatewayMetrics({ processMetrics: false }) });
  });
  afterAll(async () => {
    await server.close();
  });

  it('prints health, log, checkpoint, sync lag, ports, packs and rejects by reason', async () => {
    const r = await gateway(['status', '--url', server.url]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const o = r.out;
    expect(o).toMatch(/^gateway {5}line-3-gw1 \(packchain\.gateway\/line-3-gw1\) {2}v0\.1\.0 {2}pid 4242 {2}up 2h 0m {2}healthy$/m);
    expect(o).toMatch(/^log {9}12,345 entries \(first 0\) {2}5\.0 MiB of 8\.0 GiB \(0%\) {2}commits 321 {2}commit p50 ≤ 5 ms, p99 ≤ 500 ms$/m);
    expect(o).toMatch(/^checkpoint {2}12,000 entries, signed 4s ago$/m);
    expect(o).toMatch(/^sync {8}https:\/\/ledger\.example\.com {2}synced 12,000, lag 345 entries \(oldest 1m 30s\) {2}last success 5s ago$/m);
    expect(o).toMatch(/^serial +serial:\/dev\/serial\/by-id\/usb-FTDI_A1 +open +1h 0m +3 +195\.3 KiB +100 B +10 +3 +-$/m);
    expect(o).toMatch(/^serial +serial:\/dev\/serial\/by-id\/usb-FTDI_B2 +absent +- +0 .* ENOENT$/m);
    expect(o).toMatch(/^PACK-0001 +serial:\/dev\/serial\/by-id\/usb-FTDI_A1 +10,000 +1\.50 +2s ago +9999 +3 +7 +1$/m);
    expect(o).toMatch(/^LINE_CRC +3$/m);
    expect(o).toMatch(/^COSE_SIGNATURE +1$/m);
  }, SLOW);

  it('with --json › prints the status document the gateway served', async () => {
    const r = await gateway(['status', '--json'], { PACKCHAIN_GATEWAY_URL: server.url });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual(snapshot);
  }, SLOW);

  it('when the gateway is unhealthy › says why in the first line', async () => {
    const base = sampleSnapshot();
    snapshot = { ...base, store: { ...base.store, writable: false, lastError: 'gateway: store: quota' } };
    const r = await gateway(['status', '--url', server.url]);
    snapshot = sampleSnapshot();
    expect(r.out.split('\n')[0]).toMatch(/UNHEALTHY: store not writable: gateway: store: quota$/);
  }, SLOW);

  it('when nothing listens there › one OPS_STATUS line, exit 69', async () => {
    const r = await gateway(['status', '--url', 'http://127.0.0.1:1', '--timeout', '3000']);
    expectRefusal(r, 'OPS_STATUS', 69);
    expect(r.err).toContain('is the gateway running');
  }, SLOW);
});
