/**
 * A private dbus-daemon standing in for the system bus, so the gateway's real node-ble (which
 * connects to whatever DBUS_SYSTEM_BUS_ADDRESS names) talks to hw-sim's fake BlueZ instead of the
 * machine's Bluetooth stack (NOTES.md, "node-ble against a fake BlueZ"). The daemon is started
 * with `--fork`, so it is not our child: nothing reaps it if the caller dies. Three layers make
 * sure it never outlives its owner: `stop()` kills it and waits until it is gone; a watchdog `sh`
 * holding a pipe from this process kills it when that pipe closes (the owner exited or was
 * SIGKILLed); and `killStaleBuses(dir)` finds any survivor by its --config-file argument in /proc
 * (Linux only, as are the gateway machines). This file never touches process.env: the caller
 * points node-ble at `address`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { SimError } from '../errors.js';

export interface PrivateBusOptions {
  /** Directory that holds the config, socket and pid file (a mkdtemp under os.tmpdir(), say). */
  dir: string;
  /** File stem inside `dir` (default "bus"): several buses may share a directory under different stems. */
  name?: string;
  /** The dbus-daemon executable (default "dbus-daemon" on PATH). */
  daemon?: string;
  /** Kill the daemon when this process dies, even by SIGKILL (default true). */
  watchdog?: boolean;
  /**
   * dbus-daemon `<limit>` overrides, e.g. `{ max_match_rules_per_connection: 512 }`. By default the
   * daemon's compiled-in limits apply, as on a real system bus (whose system.conf sets none).
   */
  limits?: Readonly<Record<string, number>>;
  /** How long to wait for the daemon to start or to exit, in ms (default 5000). */
  timeoutMs?: number;
}

export interface PrivateBus {
  /** The address dbus-daemon printed (`unix:path=…,guid=…`): the value for DBUS_SYSTEM_BUS_ADDRESS. */
  readonly address: string;
  readonly pid: number;
  readonly configPath: string;
  readonly socketPath: string;
  /** Kills the daemon and waits until it has exited; idempotent. Throws BUS_START if it will not die. */
  stop(): Promise<void>;
}

/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;
const STEM = /^[A-Za-z0-9_-]{1,32}$/;

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * The daemon config: a system-type bus (what node-ble expects to reach) on a unix socket in
 * `dir`, EXTERNAL auth (uid over SCM_CREDENTIALS, as the real system bus), and a policy that lets
 * anyone own any name and send anything — the real system.conf denies both except where a
 * service's policy file punches holes; here the fake BlueZ and every test client are trusted.
 */
export function busConfig(socketPath: string, pidPath: string, limits: Readonly<Record<string, number>> = {}): string {
  const limitLines = Object.entries(limits).map(([name, value]) => {
    if (!/^[a-z_]+$/.test(name) || !Number.isInteger(value) || value < 0) {
      throw new SimError('BUS_START', `hw-sim: dbus-daemon limit ${name}=${value}, expected a lower_case name and a non-negative integer`);
    }
    return `  <limit name="${name}">${value}</limit>`;
  });
  return [
    '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"',
    ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">',
    '<busconfig>',
    '  <type>system</type>',
    `  <listen>unix:path=${xmlEscape(socketPath)}</listen>`,
    `  <pidfile>${xmlEscape(pidPath)}</pidfile>`,
    '  <auth>EXTERNAL</auth>',
    '  <policy context="default">',
    '    <allow user="*"/>',
    '    <allow own="*"/>',
    '    <allow send_destination="*" eavesdrop="true"/>',
    '    <allow receive_sender="*"/>',
    '    <allow eavesdrop="true"/>',
    '  </policy>',
    ...limitLines,
    '</busconfig>',
    '',
  ].join('\n');
}

function run(file: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolveRun, reject) => {
    execFile(file, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        const why = stderr.trim() || err.message;
        reject(new SimError('BUS_START', `hw-sim: ${file} failed: ${why}`, { cause: err }));
      } else resolveRun(stdout);
    });
  });
}

/** argv of a live process, or null if it has gone (or is a zombie waiting for init to reap it). */
async function argvOf(pid: number): Promise<string[] | null> {
  try {
    const statLine = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 3 (state) follows the parenthesised comm, which may itself contain spaces or ')'.
    const state = statLine.slice(statLine.lastIndexOf(')') + 2, statLine.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return null;
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter((a) => a !== '');
  } catch {
    return null;
  }
}

function isOurDaemon(argv: string[] | null, configPath: string): boolean {
  return argv !== null && argv.includes(`--config-file=${configPath}`);
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Sends SIGTERM, then SIGKILL after half the timeout; resolves once /proc shows it gone. */
async function killAndWait(pid: number, configPath: string, timeoutMs: number): Promise<void> {
  const signals: [number, NodeJS.Signals][] = [
    [0, 'SIGTERM'],
    [timeoutMs / 2, 'SIGKILL'],
  ];
  const start = Date.now();
  for (;;) {
    const argv = await argvOf(pid);
    if (!isOurDaemon(argv, configPath)) return;
    const elapsed = Date.now() - start;
    const next = signals[0];
    if (next !== undefined && elapsed >= next[0]) {
      signals.shift();
      try {
        process.kill(pid, next[1]);
      } catch {
        return; // ESRCH: gone between the check and the kill
      }
    } else if (elapsed > timeoutMs) {
      throw new SimError('BUS_START', `hw-sim: dbus-daemon ${pid} still running ${timeoutMs} ms after SIGKILL`);
    }
    await delay(10);
  }
}

/**
 * A shell that blocks reading a pipe whose other end only this process holds. When the pipe
 * closes — stop(), a normal exit, a crash, SIGKILL — `read` sees EOF and the shell kills the
 * daemon, checking /proc first so a recycled pid is never hit. It runs in its own session so a
 * terminal's Ctrl-C reaches our process (which then dies and closes the pipe), not the watchdog.
 */
function startWatchdog(pid: number, configPath: string): ChildProcess {
  const script = 'trap "" INT HUP TERM; while read -r _; do :; done; ' + 'if grep -qaF -- "--config-file=$2" "/proc/$1/cmdline" 2>/dev/null; then kill -TERM "$1"; fi';
  const child = spawn('sh', ['-c', script, 'watchdog', String(pid), configPath], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  });
  // Neither the child nor its pipe may keep the event loop alive: it exists only for our death.
  child.unref();
  if (child.stdin instanceof Socket) child.stdin.unref();
  child.on('error', () => undefined);
  return child;
}

/** EOF on the pipe ends the watchdog; its /proc check then finds the daemon already gone. */
async function stopWatchdog(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => {
    child.once('exit', () => {
      r();
    });
  });
  child.stdin?.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts dbus-daemon on `<dir>/<name>.sock`. Throws BUS_PATH when the socket path exceeds sun_path
 * or a daemon of the same config is already running (call killStaleBuses first after a crash),
 * BUS_START when dbus-daemon is missing, refuses the config, or prints no address and pid.
 */
export async function startPrivateBus(options: PrivateBusOptions): Promise<PrivateBus> {
  const dir = resolve(options.dir);
  const name = options.name ?? 'bus';
  const timeoutMs = options.timeoutMs ?? 5000;
  if (!STEM.test(name)) throw new SimError('BUS_PATH', `hw-sim: bus name "${name}", expected 1 to 32 of [A-Za-z0-9_-]`);
  const configPath = join(dir, `${name}.conf`);
  const socketPath = join(dir, `${name}.sock`);
  const pidPath = join(dir, `${name}.pid`);
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw new SimError('BUS_PATH', `hw-sim: socket path ${socketPath} is ${Buffer.byteLength(socketPath)} bytes, expected at most ${MAX_SOCKET_PATH} (sun_path)`);
  }
  if ((await findDaemons(configPath)).length > 0) {
    throw new SimError('BUS_PATH', `hw-sim: a dbus-daemon for ${configPath} is already running (killStaleBuses cleans up after a crash)`);
  }
  await rm(socketPath, { force: true });
  await writeFile(configPath, busConfig(socketPath, pidPath, options.limits), { mode: 0o600 });

  const out = await run(options.daemon ?? 'dbus-daemon', [`--config-file=${configPath}`, '--print-address=1', '--print-pid=1', '--fork'], timeoutMs);
  const [address = '', pidText = ''] = out.split('\n').map((l) => l.trim());
  const pid = Number(pidText);
  if (!address.startsWith('unix:path=') || !Number.isInteger(pid) || pid <= 1) {
    // It may have forked anyway: never leave it behind.
    for (const stray of await findDaemons(configPath)) await killAndWait(stray, configPath, timeoutMs);
    throw new SimError('BUS_START', `hw-sim: dbus-daemon printed ${JSON.stringify(out)}, expected an address line and a pid line`);
  }
  const watchdog = options.watchdog === false ? null : startWatchdog(pid, configPath);

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      try {
        await killAndWait(pid, configPath, timeoutMs);
      } finally {
        if (watchdog) await stopWatchdog(watchdog, timeoutMs);
      }
      await Promise.all([rm(socketPath, { force: true }), rm(pidPath, { force: true })]);
    })();
    return stopping;
  };
  return { address, pid, configPath, socketPath, stop };
}

/** Pids of live dbus-daemons started with `--config-file=<configPath>` (any if configPath ends in "/"). */
async function findDaemons(configPath: string): Promise<number[]> {
  const prefix = `--config-file=${configPath}`;
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = await argvOf(Number(entry));
    if (argv === null || !(argv[0] ?? '').endsWith('dbus-daemon')) continue;
    if (argv.some((a) => (configPath.endsWith('/') ? a.startsWith(prefix) : a === prefix))) pids.push(Number(entry));
  }
  return pids;
}

/**
 * Kills every dbus-daemon whose config file lies directly in `dir` (left behind by a crashed owner
 * whose watchdog was disabled or itself killed) and removes their socket and pid files. Returns how
 * many it killed. Throws BUS_START if one survives SIGKILL.
 */
export async function killStaleBuses(dir: string, timeoutMs = 5000): Promise<number> {
  const root = resolve(dir);
  const pids = await findDaemons(`${root}/`);
  let killed = 0;
  for (const pid of pids) {
    const argv = (await argvOf(pid)) ?? [];
    const configArg = argv.find((a) => a.startsWith(`--config-file=${root}/`));
    if (configArg === undefined) continue;
    const configPath = configArg.slice('--config-file='.length);
    if (configPath.slice(root.length + 1).includes('/')) continue; // only files directly in dir
    await killAndWait(pid, configPath, timeoutMs);
    killed += 1;
  }
  try {
    for (const entry of await readdir(root)) {
      if (!entry.endsWith('.conf')) continue;
      const stem = entry.slice(0, -'.conf'.length);
      const sock = join(root, `${stem}.sock`);
      if ((await stat(sock).catch(() => null))?.isSocket() === true) await rm(sock, { force: true });
      await rm(join(root, `${stem}.pid`), { force: true });
    }
  } catch {
    // dir gone: nothing left to clean
  }
  return killed;
}
