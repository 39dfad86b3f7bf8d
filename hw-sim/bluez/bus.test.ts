/**
 * The private dbus-daemon: it serves a bus that real clients (dbus-send, dbus-next) can use, and it
 * never outlives its owner — not after stop(), not after the owner is SIGKILLed, not after a crash
 * without a watchdog (killStaleBuses). Every test runs a real dbus-daemon in its own mkdtemp dir.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import dbus from 'dbus-next';
import { afterEach, describe, expect, it } from 'vitest';
import { killStaleBuses, startPrivateBus, type PrivateBus } from './bus.js';

const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const dirs: string[] = [];
const buses: PrivateBus[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hwsim-bus-'));
  dirs.push(dir);
  return dir;
}

async function started(options: Parameters<typeof startPrivateBus>[0]): Promise<PrivateBus> {
  const bus = await startPrivateBus(options);
  buses.push(bus);
  return bus;
}

function exec(file: string, args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((r) => {
    execFile(file, args, { encoding: 'utf8' }, (err, stdout) => {
      r({ code: err ? Number(err.code ?? 1) : 0, stdout });
    });
  });
}

/** Processes whose command line mentions `pattern` (pgrep exits 1 when there are none). */
async function pgrep(pattern: string): Promise<string[]> {
  const { stdout } = await exec('pgrep', ['-f', '--', pattern]);
  return stdout.split('\n').filter((l) => l !== '');
}

async function waitForNone(pattern: string, timeoutMs = 5000): Promise<string[]> {
  const start = Date.now();
  let left = await pgrep(pattern);
  while (left.length > 0 && Date.now() - start < timeoutMs) {
    await new Promise((r) => setTimeout(r, 20));
    left = await pgrep(pattern);
  }
  return left;
}

afterEach(async () => {
  for (const bus of buses.splice(0)) await bus.stop();
  for (const dir of dirs.splice(0)) {
    await killStaleBuses(dir);
    await rm(dir, { recursive: true, force: true });
  }
});

describe('startPrivateBus', () => {
  it('serves a bus that dbus-send can talk to at the printed address', async () => {
    const dir = await tempDir();
    const bus = await started({ dir });
    expect(bus.address.startsWith(`unix:path=${join(dir, 'bus.sock')}`)).toBe(true);
    const { code, stdout } = await exec('dbus-send', [`--bus=${bus.address}`, '--print-reply', '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.ListNames']);
    expect(code).toBe(0);
    expect(stdout).toContain('string "org.freedesktop.DBus"');
    expect(await pgrep(bus.configPath)).not.toEqual([]);
  });

  it('leaves no dbus-daemon (nor watchdog) running for its config after stop(), and stop() is idempotent', async () => {
    const bus = await started({ dir: await tempDir() });
    await bus.stop();
    expect(await pgrep(bus.configPath)).toEqual([]);
    await bus.stop();
  });

  it('kills the daemon when its owner process is SIGKILLed (watchdog)', async () => {
    const dir = await tempDir();
    const script = join(dir, 'owner.mts');
    const busModule = join(repoRoot, 'hw-sim/bluez/bus.ts');
    await writeFile(script, `import { startPrivateBus } from ${JSON.stringify(busModule)};\nconst bus = await startPrivateBus({ dir: ${JSON.stringify(dir)} });\nconsole.log(bus.pid);\nsetInterval(() => undefined, 1000);\n`);
    const owner = spawn(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const pid = await new Promise<number>((r, reject) => {
        owner.stdout.once('data', (d: Buffer) => {
          r(Number(d.toString().trim()));
        });
        owner.once('exit', (code) => {
          reject(new Error(`owner exited with ${code}`));
        });
      });
      expect(pid).toBeGreaterThan(1);
      expect(await pgrep(join(dir, 'bus.conf'))).not.toEqual([]);
      owner.kill('SIGKILL');
      expect(await waitForNone(join(dir, 'bus.conf'))).toEqual([]);
    } finally {
      owner.kill('SIGKILL');
    }
  });

  it('refuses a second daemon on the same config with BUS_PATH', async () => {
    const dir = await tempDir();
    await started({ dir });
    await expect(startPrivateBus({ dir })).rejects.toMatchObject({ name: 'SimError', code: 'BUS_PATH' });
    const other = await started({ dir, name: 'other' });
    expect(other.address).toContain('other.sock');
  });

  it('refuses a socket path longer than sun_path with BUS_PATH', async () => {
    const dir = join(await tempDir(), 'x'.repeat(120));
    await expect(startPrivateBus({ dir })).rejects.toMatchObject({ code: 'BUS_PATH' });
  });

  it('reports BUS_START when the daemon cannot be run or a limit is malformed', async () => {
    const dir = await tempDir();
    await expect(startPrivateBus({ dir, daemon: join(dir, 'no-such-dbus-daemon') })).rejects.toMatchObject({ code: 'BUS_START' });
    await expect(startPrivateBus({ dir, limits: { 'bad name': 1 } })).rejects.toMatchObject({ code: 'BUS_START' });
  });

  it('applies <limit> overrides (a third match rule on one connection is refused at a limit of 2)', async () => {
    const bus = await started({ dir: await tempDir(), limits: { max_match_rules_per_connection: 2 } });
    const client = dbus.sessionBus({ busAddress: bus.address });
    try {
      const addMatch = (rule: string) =>
        client.call(
          new dbus.Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'AddMatch', signature: 's', body: [rule] }),
        );
      await addMatch("type='signal',member='A'");
      await addMatch("type='signal',member='B'");
      await expect(addMatch("type='signal',member='C'")).rejects.toMatchObject({ type: 'org.freedesktop.DBus.Error.LimitsExceeded' });
    } finally {
      client.disconnect();
    }
  });
});

describe('killStaleBuses', () => {
  it('kills a daemon whose owner left without stop() and no watchdog, then finds nothing', async () => {
    const dir = await tempDir();
    const stale = await startPrivateBus({ dir, watchdog: false });
    expect(await pgrep(stale.configPath)).toHaveLength(1);
    expect(await killStaleBuses(dir)).toBe(1);
    expect(await pgrep(stale.configPath)).toEqual([]);
    expect(await killStaleBuses(dir)).toBe(0);
    const again = await started({ dir });
    expect(again.pid).not.toBe(stale.pid);
  });

  it('leaves daemons of other directories alone', async () => {
    const mine = await tempDir();
    const theirs = await started({ dir: await tempDir() });
    expect(await killStaleBuses(mine)).toBe(0);
    expect(await pgrep(theirs.configPath)).not.toEqual([]);
  });
});
