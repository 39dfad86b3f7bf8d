/**
 * The fault harness plays systemd for the gateway (`Restart=always`, `RestartSec=0`): it starts
 * `packchain gateway run` through the gateway-run kit's Daemon, and whenever the process exits —
 * killed by the harness or on its own — starts it again; that is the only restart there is. Each
 * restart's recovery time is measured from the exit to the new process logging "gateway: running".
 * An exit the harness did not cause is counted (and still restarted).
 */
import { Daemon, type RunSetup } from '../gateway-run-kit.js';

export interface Restart {
  readonly cause: 'kill' | 'torn-tail' | 'unexpected';
  /** Exit of the old process → "gateway: running" of the new one. */
  readonly recoveryMs: number;
  /** Entries recovery cut from the log's tail on this start (gateway: log opened). */
  readonly cutEntries: number;
  readonly cutBytes: number;
}

export class Supervisor {
  daemon: Daemon | undefined;
  readonly restarts: Restart[] = [];
  readonly unexpected: string[] = [];
  private expecting = false;
  private stopping = false;
  private restarting: Promise<void> | undefined;

  constructor(private readonly s: RunSetup) {}

  async start(): Promise<void> {
    this.daemon = await this.spawn();
  }

  /** The running daemon, after any restart in progress. */
  async running(): Promise<Daemon> {
    while (this.restarting) await this.restarting;
    if (!this.daemon) throw new Error('faults: the gateway is not running');
    return this.daemon;
  }

  /**
   * kill -9 of the running gateway; `beforeRestart` runs while it is down (the power-cut
   * simulation). Resolves when the restarted gateway runs.
   */
  async kill(cause: 'kill' | 'torn-tail', beforeRestart?: () => void): Promise<void> {
    const d = await this.running();
    this.expecting = true;
    await d.stop('SIGKILL');
    this.expecting = false;
    const exitedAt = performance.now();
    beforeRestart?.();
    await this.restart(cause, exitedAt);
  }

  /** SIGTERM, as `systemctl stop` does; returns the exit code. No restart follows. */
  async stop(): Promise<number | null> {
    this.stopping = true;
    while (this.restarting) await this.restarting;
    const d = this.daemon;
    this.daemon = undefined;
    return d ? d.stop('SIGTERM') : null;
  }

  /** kill -9 without a restart (the harness's own clean-up after a failure). */
  async abandon(): Promise<void> {
    this.stopping = true;
    while (this.restarting) await this.restarting;
    await this.daemon?.stop('SIGKILL');
    this.daemon = undefined;
  }

  private async restart(cause: Restart['cause'], exitedAt: number): Promise<void> {
    let done!: () => void;
    this.restarting = new Promise((r) => (done = r));
    try {
      const d = await this.spawn();
      const opened = d.lines().find((l) => typeof l.msg === 'string' && l.msg.startsWith('gateway: log opened')) as { report?: { cutEntries?: number; cutBytes?: number } } | undefined;
      this.daemon = d;
      this.restarts.push({ cause, recoveryMs: performance.now() - exitedAt, cutEntries: opened?.report?.cutEntries ?? 0, cutBytes: opened?.report?.cutBytes ?? 0 });
    } finally {
      this.restarting = undefined;
      done();
    }
  }

  private async spawn(): Promise<Daemon> {
    let last: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const d = await Daemon.start(this.s);
        d.child.once('exit', (code, signal) => {
          if (this.expecting || this.stopping || this.daemon !== d) return;
          this.unexpected.push(`exit ${code ?? signal ?? '?'}: ${d.err.slice(-2000)}`);
          void this.restart('unexpected', performance.now());
        });
        return d;
      } catch (e) {
        last = e;
        this.unexpected.push(`start failed: ${String(e).slice(0, 2000)}`);
      }
    }
    throw last instanceof Error ? last : new Error(String(last));
  }
}
