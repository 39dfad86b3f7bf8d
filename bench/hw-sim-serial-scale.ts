/**
 * Measurement harness (not a test): how much CPU and memory N simulated BMUs on socat pty pairs cost
 * on this machine, idle and producing one signed frame per second each, with a host process that
 * reads every host-side port with serialport, decodes the lines and acks every frame (as a gateway
 * would). Prints one JSON object per phase. docs/hw-sim.md §3 "Many devices" has the figures.
 *
 *   node --import tsx bench/hw-sim-serial-scale.ts [devices=200] [idleSeconds=20] [sendSeconds=30] [durable=1]
 *
 * The host side runs as a child process (`... hw-sim-serial-scale.ts host <dir> <n>`) so the
 * device process's figures are its own.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SerialPort } from 'serialport';
import { ackMessages, decodeFrame, encodeLine, LineDecoder, parseSign1 } from '../protocol/index.js';
import { generateSecretKey } from '../hw-sim/commands.js';
import { Firmware } from '../hw-sim/firmware.js';
import { fixedSensor, makeFactory } from '../hw-sim/firmware-testkit.js';
import { DeviceFlash } from '../hw-sim/flash.js';
import { createPtyPair, type PtyPair } from '../hw-sim/pty.js';
import { SerialDeviceLink } from '../hw-sim/serial-link.js';
import { nodeArgsFor } from './harness.js';

/**
 * utime + stime in ms and memory in KiB of a process, from /proc. Memory is PSS (smaps_rollup):
 * RSS would count socat's shared libraries once per process, 200 times over.
 */
async function procUsage(pid: number): Promise<{ cpuMs: number; rssKiB: number }> {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  const ticks = Number(stat[11]) + Number(stat[12]); // fields 14 and 15 (utime, stime), 100 Hz
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const pss = Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
  return { cpuMs: ticks * 10, rssKiB: pss };
}

async function sumUsage(pids: readonly number[]): Promise<{ cpuMs: number; rssKiB: number }> {
  let cpuMs = 0;
  let rssKiB = 0;
  for (const pid of pids) {
    const u = await procUsage(pid);
    cpuMs += u.cpuMs;
    rssKiB += u.rssKiB;
  }
  return { cpuMs, rssKiB };
}

async function measure(label: string, seconds: number, pids: { socat: number[]; host: number | undefined }, extra: () => object): Promise<void> {
  const cpu0 = process.cpuUsage();
  const socat0 = await sumUsage(pids.socat);
  const host0 = pids.host ? await procUsage(pids.host) : undefined;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const socat1 = await sumUsage(pids.socat);
  const host1 = pids.host ? await procUsage(pids.host) : undefined;
  const pct = (ms: number): number => Math.round((ms / wall) * 1000) / 10;
  console.log(
    JSON.stringify({
      phase: label,
      seconds: Math.round(wall / 100) / 10,
      deviceProcessCpuPct: pct((cpu.user + cpu.system) / 1000),
      deviceProcessRssMiB: Math.round(process.memoryUsage().rss / 1048576),
      socatCpuPctTotal: pct(socat1.cpuMs - socat0.cpuMs),
      socatPssMiBTotal: Math.round(socat1.rssKiB / 1024),
      hostProcessCpuPct: host0 && host1 ? pct(host1.cpuMs - host0.cpuMs) : null,
      hostProcessPssMiB: host1 ? Math.round(host1.rssKiB / 1024) : null,
      ...extra(),
    }),
  );
}

async function deviceMain(n: number, idleSeconds: number, sendSeconds: number, durable: boolean): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'hwsim-scale-'));
  const pairs: PtyPair[] = [];
  const links: SerialDeviceLink[] = [];
  const firmwares: Firmware[] = [];
  /** Wall ms between a frame falling due and it being durable in the ring (storage backlog). */
  const lag = { max: 0, sum: 0, n: 0 };
  try {
    const factory = await makeFactory('Ed25519');
    for (let i = 0; i < n; i++) {
      const pair = await createPtyPair({ dir, name: `bmu${i}` });
      pairs.push(pair);
      const flash = await DeviceFlash.open({ dir: join(dir, `flash${i}`), factory: { model: 'PC-48V-100Ah', firmware: '1.4.2' }, durable });
      const sk = generateSecretKey('Ed25519', (k) => new Uint8Array(randomBytes(k)));
      await flash.setKey('Ed25519', sk);
      const serial = `PACK-${String(i).padStart(4, '0')}`;
      const pub = flash.identity.publicKey;
      if (!pub) throw new Error('no key');
      await flash.setChain(await factory.issue(pub, 'Ed25519', serial), serial);
      const link = SerialDeviceLink.open({ path: pair.devicePath });
      links.push(link);
      // maxCatchUp 1: the idle phase is not caught up in a burst when ticking starts.
      firmwares.push(
        Firmware.boot({
          flash,
          link,
          sensor: fixedSensor(),
          clock: () => Date.now(),
          random: (k) => new Uint8Array(randomBytes(k)),
          maxCatchUp: 1,
          onFrameProduced: (f) => {
            const l = Date.now() - f.producedAt;
            lag.max = Math.max(lag.max, l);
            lag.sum += l;
            lag.n++;
          },
        }),
      );
    }
    const host = spawn(process.execPath, [...nodeArgsFor(fileURLToPath(import.meta.url)), 'host', dir, String(n)], { stdio: ['ignore', 'inherit', 'inherit'] });
    await new Promise((r) => setTimeout(r, 3000)); // hosts open their ports
    const pids = { socat: pairs.flatMap((p) => (p.pid === undefined ? [] : [p.pid])), host: host.pid };
    const totals = (): object => ({
      produced: firmwares.reduce((a, f) => a + f.stats.framesProduced, 0),
      producedPerDeviceMax: Math.max(...firmwares.map((f) => f.stats.framesProduced)),
      skipped: firmwares.reduce((a, f) => a + f.stats.skippedPeriods, 0),
      acked: firmwares.reduce((a, f) => a + f.stats.framesAcked, 0),
      unacked: firmwares.reduce((a, f) => a + f.flash.ring.size, 0),
      bytesSent: firmwares.reduce((a, f) => a + f.stats.bytesSent, 0),
      durable,
      lagMsMean: lag.n > 0 ? Math.round(lag.sum / lag.n) : null,
      lagMsMax: lag.max,
    });
    await measure(`${n} idle`, idleSeconds, pids, totals);
    // One tick first: each device produces the frame that fell due during the idle phase and skips
    // the rest (maxCatchUp 1); lag counts from the steady state on.
    await Promise.all(firmwares.map((fw) => fw.tick(Date.now())));
    Object.assign(lag, { max: 0, sum: 0, n: 0 });
    // Ticks every 100 ms: each device produces when its 1 s period is due, spread over the second.
    const ticker = setInterval(() => {
      const now = Date.now();
      for (const fw of firmwares) void fw.tick(now);
    }, 100);
    await measure(`${n} sending 1 frame/s`, sendSeconds, pids, totals);
    clearInterval(ticker);
    host.kill('SIGTERM');
  } finally {
    for (const fw of firmwares) await fw.stop();
    for (const l of links) await l.close();
    for (const p of pairs) await p.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Child: opens every host port, decodes lines, acks each frame at once. */
async function hostMain(dir: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const port = new SerialPort({ path: join(dir, `bmu${i}.host`), baudRate: 115_200 });
    const decoder = new LineDecoder();
    port.on('data', (chunk: Buffer) => {
      const counters: number[] = [];
      for (const ev of decoder.push(chunk)) {
        if (ev.kind === 'message' && ev.message.type === 'frame') counters.push(decodeFrame(parseSign1(ev.message.cose).payload).counter);
      }
      for (const ack of counters.length > 0 ? ackMessages(counters) : []) port.write(Buffer.from(encodeLine(ack)));
    });
    port.on('error', () => undefined);
  }
  await new Promise(() => undefined); // until killed
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  if (args[0] === 'host') await hostMain(args[1] ?? '', Number(args[2]));
  else await deviceMain(Number(args[0] ?? 200), Number(args[1] ?? 20), Number(args[2] ?? 30), args[3] !== '0');
}
