import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseVerifierKey } from '../protocol/index.js';
import { loadConfig } from './config.js';
import { isGatewayError } from './errors.js';
import { initGateway } from './init.js';
import { loadKeyFile } from './keys.js';

const tmp = mkdtempSync(join(tmpdir(), 'gw-init-'));
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});
let n = 0;
const dir = (): string => join(tmp, `d${n++}`);

describe('initGateway', () => {
  it('writes a config the daemon loads (0640) and a key (0600) whose verifier key it returns', async () => {
    const d = dir();
    const r = await initGateway({ configPath: join(d, 'etc/gateway.yaml'), name: 'line-3-gw1', dataDir: join(d, 'data') });
    expect(statSync(r.configPath).mode & 0o777).toBe(0o640);
    expect(statSync(r.keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(d, 'etc')).mode & 0o777).toBe(0o750);
    expect(r.keyFile).toBe(join(d, 'etc/gateway.key'));
    const c = await loadConfig(r.configPath);
    expect(c).toEqual(r.config);
    expect(c).toMatchObject({ name: 'line-3-gw1', keyFile: r.keyFile, dataDir: join(d, 'data'), trustBundle: join(d, 'etc/trust-bundle.json') });
    expect(readFileSync(r.configPath, 'utf8')).toContain('keyFile: "gateway.key"'); // relative: the directory can be moved
    expect((await loadKeyFile(c.keyFile, c.name)).verifierKey).toBe(r.verifierKey);
    expect(parseVerifierKey(r.verifierKey).name).toBe('packchain.gateway/line-3-gw1');
    expect(existsSync(join(d, 'data'))).toBe(false); // the service user's store creates it
  });

  it('with a key file outside the config directory › writes its absolute path into the config', async () => {
    const d = dir();
    const key = join(dir(), 'secret/gw2.key');
    const r = await initGateway({ configPath: join(d, 'gw.yaml'), name: 'gw2', keyFile: key });
    expect(readFileSync(r.configPath, 'utf8')).toContain(`keyFile: ${JSON.stringify(key)}`);
    expect(r.keyFile).toBe(key);
    expect(statSync(r.keyFile).mode & 0o777).toBe(0o600);
  });

  it('when the config exists › refuses INIT_EXISTS and writes no key', async () => {
    const d = dir();
    mkdirSync(d);
    writeFileSync(join(d, 'gateway.yaml'), 'name: old\n');
    await expect(initGateway({ configPath: join(d, 'gateway.yaml'), name: 'gw' })).rejects.toSatisfy((e) => isGatewayError(e, 'INIT_EXISTS') && (e as Error).message.includes('gateway.yaml exists'));
    expect(existsSync(join(d, 'gateway.key'))).toBe(false);
    expect(readFileSync(join(d, 'gateway.yaml'), 'utf8')).toBe('name: old\n');
  });

  it('when the key exists › refuses INIT_EXISTS, keeps the key and writes no config', async () => {
    const d = dir();
    mkdirSync(d);
    writeFileSync(join(d, 'gateway.key'), 'old key', { mode: 0o600 });
    await expect(initGateway({ configPath: join(d, 'gateway.yaml'), name: 'gw' })).rejects.toSatisfy((e) => isGatewayError(e, 'INIT_EXISTS') && (e as Error).message.includes('gateway.key exists'));
    expect(existsSync(join(d, 'gateway.yaml'))).toBe(false);
    expect(readFileSync(join(d, 'gateway.key'), 'utf8')).toBe('old key');
  });

  it('when the name is invalid › refuses CONFIG and writes nothing', async () => {
    const d = dir();
    await expect(initGateway({ configPath: join(d, 'gateway.yaml'), name: '-bad/name' })).rejects.toSatisfy((e) => isGatewayError(e, 'CONFIG') && (e as Error).message.includes('gateway: init: name: expected'));
    expect(existsSync(d)).toBe(false);
  });

  it('when the config directory cannot be created › refuses CONFIG and writes no key', async () => {
    const d = dir();
    mkdirSync(d);
    writeFileSync(join(d, 'file'), '');
    await expect(initGateway({ configPath: join(d, 'file/gateway.yaml'), name: 'gw' })).rejects.toSatisfy((e) => isGatewayError(e, 'CONFIG'));
    expect(existsSync(join(d, 'file/gateway.key'))).toBe(false);
  });
});
