// PackSession over real socat ptys through the real serialport library, against the scripted pack
// of device-testkit.ts: opening, request ids and timeouts, hello retries, unprompted frames (never
// acked), line noise, unplug mid-request, and error statuses mapped to ProvisioningError codes.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errorResponse, type RequestMessage } from '../protocol/index.js';
import { FakePack, startTestPty, type FakePackOptions, type TestPty } from './device-testkit.js';
import { PackSession } from './device.js';
import { ProvisioningError } from './errors.js';

let dir: string;
const cleanup: (() => Promise<void>)[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'prov-device-'));
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

async function rig(opts: FakePackOptions = {}): Promise<{ pty: TestPty; pack: FakePack; session: PackSession }> {
  const pty = await startTestPty(dir, 'p');
  cleanup.push(() => pty.stop());
  const pack = await FakePack.attach(pty.devicePath, opts);
  cleanup.push(() => pack.close());
  const session = await PackSession.open({ path: pty.hostPath });
  cleanup.push(() => session.close());
  return { pty, pack, session };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ProvisioningError) return e.code;
    throw e;
  }
  return 'resolved';
}

describe('PackSession.open', () => {
  describe('when the port path does not exist', () => {
    it('throws NO_DEVICE naming the path', async () => {
      const path = join(dir, 'ttyUSB-missing');
      const err = await PackSession.open({ path }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProvisioningError);
      expect((err as ProvisioningError).code).toBe('NO_DEVICE');
      expect((err as ProvisioningError).message).toContain(path);
    });
  });

  describe('when the path is a regular file, not a tty', () => {
    it('throws NO_DEVICE', async () => {
      const path = join(dir, 'not-a-tty');
      writeFileSync(path, 'x');
      expect(await codeOf(PackSession.open({ path }))).toBe('NO_DEVICE');
    });
  });
});

describe('PackSession.identify', () => {
  it('returns the hello of the pack on the other end', async () => {
    const { session } = await rig({ model: 'FAKE-8S', firmware: '1.7.0' });
    const hello = await session.identify(2000);
    expect(hello).toMatchObject({ version: 1, serial: '', model: 'FAKE-8S', firmware: '1.7.0', alg: null, chain: [] });
  });

  describe('when nothing answers', () => {
    it('throws NO_ANSWER after the timeout', async () => {
      const { session, pack } = await rig({ onRequest: () => 'ignore' });
      expect(await codeOf(session.identify(1600))).toBe('NO_ANSWER');
      expect(pack.ops.filter((o) => o === 'hello').length).toBeGreaterThanOrEqual(2); // it asked again
    });
  });

  describe('when the first hello is lost (pack still booting)', () => {
    it('asks again and takes the answer to the repeat', async () => {
      let seen = 0;
      const { session } = await rig({ onRequest: (req) => (req.op === 'hello' && seen++ === 0 ? 'ignore' : 'default') });
      const hello = await session.identify(3000);
      expect(hello.firmware).toBe('1.2.3');
      expect(seen).toBeGreaterThanOrEqual(2);
    });
  });

  describe('when a boot banner and noise precede the answer', () => {
    it('counts the bad lines and still answers', async () => {
      const { session } = await rig({
        onRequest: (req, pack) => {
          pack.sendRaw('BMU boot v1.2.3\r\npcF !!!! 00000000\n');
          return pack.defaultAnswer(req);
        },
      });
      await session.identify(2000);
      expect(session.stats.lineErrorCount).toBeGreaterThanOrEqual(2);
      expect(session.stats.lineErrors.LINE_GARBAGE).toBeGreaterThanOrEqual(1);
    });
  });
});

describe('PackSession.call', () => {
  it('returns the typed result of an ok response', async () => {
    const { session } = await rig();
    const key = await session.call({ op: 'keygen', alg: -8 }, { timeoutMs: 2000 });
    expect(key.alg).toBe(-8);
    expect(key.publicKey).toHaveLength(32);
  });

  describe('when the pack answers an error status', () => {
    it('throws DEVICE_ERROR carrying the status and text', async () => {
      const { session } = await rig();
      const err = await session.call({ op: 'pubkey' }, { timeoutMs: 2000 }).catch((e: unknown) => e);
      expect((err as ProvisioningError).code).toBe('DEVICE_ERROR');
      expect((err as ProvisioningError).message).toMatch(/status NO_KEY: no key/);
    });
  });

  describe('when the result does not fit the op', () => {
    it('throws DEVICE_ERROR', async () => {
      const { session } = await rig({ onRequest: (req, pack) => (req.op === 'pubkey' ? pack.defaultAnswer({ ...req, op: 'hello' }) : 'default') });
      expect(await codeOf(session.call({ op: 'pubkey' }, { timeoutMs: 2000 }))).toBe('DEVICE_ERROR');
    });
  });

  describe('when the pack streams frames while the station waits', () => {
    it('ignores them and never acknowledges one', async () => {
      const { session, pack } = await rig({
        onRequest: (req, p) => {
          if (req.op !== 'pubkey' || p.alg === null) return 'default';
          p.serial = 'PK-1';
          for (let i = 0; i < 3; i++) p.send({ type: 'frame', cose: p.frame() });
          p.send({ type: 'error', code: 'LOW_BATTERY', message: 'cell 3 low' });
          return p.defaultAnswer(req);
        },
      });
      await session.call({ op: 'keygen', alg: -7 }, { timeoutMs: 2000 });
      await session.call({ op: 'pubkey' }, { timeoutMs: 2000 });
      await session.identify(2000); // one more round trip: anything the station sent has arrived
      expect(session.stats.framesIgnored).toBe(3);
      expect(session.stats.errorNotices).toBe(1);
      expect(pack.acks).toEqual([]);
    });
  });

  describe('when the answer comes after the timeout', () => {
    it('throws DEVICE_LOST at the timeout and counts the late answer as stray', async () => {
      const late: RequestMessage[] = [];
      const { session, pack } = await rig({
        onRequest: (req) => {
          if (req.op !== 'selftest') return 'default';
          late.push(req);
          return 'ignore';
        },
      });
      expect(await codeOf(session.call({ op: 'selftest' }, { timeoutMs: 300 }))).toBe('DEVICE_LOST');
      for (const req of late) pack.send(errorResponse(req.id, 'NO_KEY', 'late'));
      await session.identify(2000);
      expect(session.stats.strayResponses).toBe(1);
    });
  });

  describe('when the pack is unplugged while a request waits', () => {
    it('fails it with DEVICE_LOST at once, and every later request too', async () => {
      const { session, pty } = await rig({ onRequest: (req) => (req.op === 'keygen' ? 'ignore' : 'default') });
      const waiting = session.call({ op: 'keygen', alg: -8 }, { timeoutMs: 25_000 }).catch((e: unknown) => e);
      await new Promise((r) => setTimeout(r, 100));
      await pty.stop();
      const err = (await waiting) as ProvisioningError;
      expect(err.code).toBe('DEVICE_LOST');
      expect(err.message).toMatch(/disconnected|closed|port error|write failed/); // the close event, not the timeout
      expect(session.lost).toBe(true);
      expect(await codeOf(session.identify(1000))).toBe('DEVICE_LOST');
    });
  });

  describe('after close()', () => {
    it('fails requests with DEVICE_LOST, and close can be called again', async () => {
      const { session } = await rig();
      await session.close();
      await session.close();
      expect(await codeOf(session.call({ op: 'hello' }, { timeoutMs: 500 }))).toBe('DEVICE_LOST');
    });
  });
});
