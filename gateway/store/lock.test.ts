/**
 * One writer per log directory: a second open is STORE_LOCKED while the holder lives (this process
 * or another), a lock left by a dead process or before a reboot is taken over, and close()
 * releases it.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LogStore } from './log-store.js';
import { TEST_ORIGIN, tempDir } from './testkit.js';

const dirs: string[] = [];
const kill: (() => void)[] = [];
afterEach(async () => {
  for (const k of kill.splice(0)) k();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function logDir(): Promise<string> {
  const d = await tempDir('lock');
  dirs.push(d);
  await (await LogStore.open({ dir: d, origin: TEST_ORIGIN })).close();
  return d;
}

const boot = (): string => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

/** A process that has exited: its pid is free (reuse within the test is vanishingly unlikely). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((r) => child.on('exit', r));
  return child.pid as number;
}

describe('log directory lock', () => {
  it('refuses a second open in the same process and allows it after close', async () => {
    const d = await logDir();
    const a = await LogStore.open({ dir: d, origin: TEST_ORIGIN });
    await expect(LogStore.open({ dir: d, origin: TEST_ORIGIN })).rejects.toMatchObject({ code: 'STORE_LOCKED' });
    await a.close();
    await (await LogStore.open({ dir: d, origin: TEST_ORIGIN })).close();
  });

  it('refuses while another live process holds the lock', async () => {
    const d = await logDir();
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    kill.push(() => child.kill('SIGKILL'));
    await writeFile(join(d, 'LOCK'), JSON.stringify({ pid: child.pid, boot: boot() }));
    await expect(LogStore.open({ dir: d, origin: TEST_ORIGIN })).rejects.toThrow(/held by a running process/);
  });

  it('takes over a lock left by a dead process, by a previous boot, or torn while being written', async () => {
    const d = await logDir();
    const cases: [string, RegExp][] = [
      [JSON.stringify({ pid: await deadPid(), boot: boot() }), /not running/],
      [JSON.stringify({ pid: process.pid, boot: 'another-boot' }), /before a reboot/],
      ['{"pid":', /unreadable/],
    ];
    for (const [text, why] of cases) {
      await writeFile(join(d, 'LOCK'), text);
      const s = await LogStore.open({ dir: d, origin: TEST_ORIGIN });
      expect(s.report.lockTakenOver).toMatch(why);
      await s.close();
    }
  });
});
