import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { formatSignerKey, openCheckpoint, parseVerifierKey, signCheckpoint, toBase64 } from '../protocol/index.js';
import { isGatewayError } from './errors.js';
import { createKeyFile, loadKeyFile } from './keys.js';

const tmp = mkdtempSync(join(tmpdir(), 'gw-keys-'));
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});
let n = 0;
const fresh = (): string => join(tmp, `k${n++}.key`);
const SEED = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const SEED_B64 = toBase64(SEED);

/** The GatewayError a promise rejects with, checked for its code and for not leaking the seed. */
async function refusal(p: Promise<unknown>, code: string): Promise<string> {
  const e: unknown = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(isGatewayError(e)).toBe(true);
  expect((e as { code: string }).code).toBe(code);
  const m = (e as Error).message;
  expect(m).toMatch(/^gateway: key file /);
  expect(m).not.toContain(SEED_B64.slice(4, 40));
  return m;
}

describe('createKeyFile', () => {
  let oldMask: number | undefined;
  afterEach(() => {
    if (oldMask !== undefined) process.umask(oldMask);
    oldMask = undefined;
  });

  it('writes one C2SP signer key line for the gateway origin with mode 0600, even under umask 000', async () => {
    oldMask = process.umask(0);
    const p = fresh();
    const k = await createKeyFile(p, 'line-3-gw1');
    expect(statSync(p).mode & 0o777).toBe(0o600);
    expect(readFileSync(p, 'utf8')).toMatch(/^PRIVATE\+KEY\+packchain\.gateway\/line-3-gw1\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}\n$/);
    expect(k.origin).toBe('packchain.gateway/line-3-gw1');
  });

  it('with a given seed › writes exactly the signer key text Go note.NewSigner reads', async () => {
    const p = fresh();
    await createKeyFile(p, 'gw1', SEED);
    expect(readFileSync(p, 'utf8')).toBe(`${formatSignerKey('packchain.gateway/gw1', SEED)}\n`);
  });

  it('when the file exists › refuses INIT_EXISTS and leaves it untouched', async () => {
    const p = fresh();
    writeFileSync(p, 'keep me', { mode: 0o600 });
    await expect(createKeyFile(p, 'gw1')).rejects.toSatisfy((e) => isGatewayError(e, 'INIT_EXISTS'));
    expect(readFileSync(p, 'utf8')).toBe('keep me');
  });

  it('when the directory is missing › throws KEY_FILE', async () => {
    await expect(createKeyFile(join(tmp, 'no-such-dir', 'gw.key'), 'gw1')).rejects.toSatisfy((e) => isGatewayError(e, 'KEY_FILE') && (e as Error).message.includes('ENOENT'));
  });

  it('when the name is not a gateway name › throws CONFIG and writes nothing', async () => {
    const p = fresh();
    await expect(createKeyFile(p, 'bad name')).rejects.toSatisfy((e) => isGatewayError(e, 'CONFIG'));
    expect(() => statSync(p)).toThrow();
  });
});

describe('loadKeyFile', () => {
  it('round trip › the loaded key signs checkpoints that the printed verifier key opens', async () => {
    const p = fresh();
    const made = await createKeyFile(p, 'line-3-gw1');
    const k = await loadKeyFile(p, 'line-3-gw1');
    expect(k.verifierKey).toBe(made.verifierKey);
    const verifier = parseVerifierKey(k.verifierKey);
    expect(verifier.name).toBe('packchain.gateway/line-3-gw1');
    const note = signCheckpoint({ origin: k.origin, size: 3, rootHash: new Uint8Array(32).fill(7) }, [k.signer]);
    expect(openCheckpoint(note, { origin: k.origin, verifiers: [verifier] }).size).toBe(3);
  });

  it('accepts mode 0400 (read-only for the owner)', async () => {
    const p = fresh();
    await createKeyFile(p, 'gw1', SEED);
    chmodSync(p, 0o400);
    await expect(loadKeyFile(p, 'gw1')).resolves.toMatchObject({ origin: 'packchain.gateway/gw1' });
  });

  it.each(['0644', '0640', '0604', '0620', '0606'])('when the mode is %s › refuses KEY_PERMISSIONS and says chmod 600', async (text) => {
    const mode = parseInt(text, 8);
    const p = fresh();
    await createKeyFile(p, 'gw1', SEED);
    chmodSync(p, mode);
    const m = await refusal(loadKeyFile(p, 'gw1'), 'KEY_PERMISSIONS');
    expect(m).toContain(`mode ${mode.toString(8).padStart(4, '0')}; expected 0600`);
    expect(m).toContain('chmod 600');
  });

  it('when the path is a directory › refuses KEY_PERMISSIONS', async () => {
    const d = join(tmp, `dir${n++}`);
    mkdirSync(d, { mode: 0o700 });
    expect(await refusal(loadKeyFile(d, 'gw1'), 'KEY_PERMISSIONS')).toContain('expected a regular file');
  });

  it('when the file is missing › throws KEY_FILE pointing at gateway init', async () => {
    expect(await refusal(loadKeyFile(join(tmp, 'missing.key'), 'gw1'), 'KEY_FILE')).toMatch(/ENOENT; create it with `packchain gateway init`/);
  });

  it('when the key belongs to another gateway name › refuses KEY_FILE naming both origins', async () => {
    const p = fresh();
    await createKeyFile(p, 'gw1', SEED);
    const m = await refusal(loadKeyFile(p, 'gw2'), 'KEY_FILE');
    expect(m).toContain('"packchain.gateway/gw1"; expected packchain.gateway/gw2');
  });

  it('when the file holds a witness cosignature key › refuses KEY_FILE', async () => {
    const p = fresh();
    writeFileSync(p, `${formatSignerKey('packchain.gateway/gw1', SEED, 'cosignature')}\n`, { mode: 0o600 });
    expect(await refusal(loadKeyFile(p, 'gw1'), 'KEY_FILE')).toContain('expected an Ed25519 note key');
  });

  it.each([
    ['garbage', 'not a key at all'],
    ['a tampered key ID', formatSignerKey('packchain.gateway/gw1', SEED).replace(/\+[0-9a-f]{8}\+/, '+00000000+')],
    ['a truncated key', formatSignerKey('packchain.gateway/gw1', SEED).slice(0, -6)],
    ['two lines', `${formatSignerKey('packchain.gateway/gw1', SEED)}\n${formatSignerKey('packchain.gateway/gw1', SEED)}\n`],
  ])('when the file holds %s › refuses KEY_FILE without quoting the file', async (_what, text) => {
    const p = fresh();
    writeFileSync(p, text, { mode: 0o600 });
    expect(await refusal(loadKeyFile(p, 'gw1'), 'KEY_FILE')).toContain('expected one line PRIVATE+KEY+');
  });

  it('when the file is large › refuses KEY_FILE before reading it', async () => {
    const p = fresh();
    writeFileSync(p, 'x'.repeat(10_000), { mode: 0o600 });
    expect(await refusal(loadKeyFile(p, 'gw1'), 'KEY_FILE')).toContain('10000 bytes');
  });
});
