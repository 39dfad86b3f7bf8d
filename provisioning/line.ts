/**
 * Line mode (issue 5 item 4; docs/provisioning.md "Line mode"): watch a set of ports (a glob) and
 * provision every pack that is newly connected, concurrently, one attempt per port. A port whose
 * attempt has finished is left alone until it disappears (the technician unplugs the pack), so the
 * same pack is never provisioned twice by accident; the next pack plugged there starts a new
 * attempt. Progress is one live line per port on a terminal (redrawn in place with ANSI escapes),
 * one line per event otherwise (logs, CI). It stops after `count` attempts or when `signal` aborts
 * (SIGINT/SIGTERM: attempts in flight are finished first, so nothing is left half-done), then
 * prints a summary: passed, failed by code, mean and max time per pack.
 */
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EXIT_LINE_FAILURES, type PackFailureCode } from './errors.js';
import { expandPortGlob, type SerialSource } from './line-sources.js';
import type { AttemptOutcome, AttemptStep, ProgressEvent } from './station.js';

/** Where line mode writes: a TTY gets live lines, anything else one line per event. */
export interface LineOutput {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  /** Terminal width: live lines are cut to it, since a wrapped line would break the redraw. */
  readonly columns?: number;
}

export interface LineOptions {
  /** Port glob, e.g. `/dev/serial/by-id/usb-FTDI*` (see expandPortGlob). */
  readonly ports: string;
  readonly serials: SerialSource;
  /** Stop after this many attempts (PASS or FAIL); default: run until aborted. */
  readonly count?: number;
  /** How often the glob is expanded (default 500 ms). */
  readonly pollMs?: number;
  /** Runs one attempt (provisionPack with the station's CA, registry and options bound). */
  readonly attempt: (port: string, serial: string, onProgress: (ev: ProgressEvent) => void) => Promise<AttemptOutcome>;
  readonly out: LineOutput;
  /** The screen to draw on (default: a new one on `out`); pass one to show other messages, e.g. serial warnings, in place. */
  readonly screen?: LineScreen;
  /** Abort = stop starting attempts, finish those in flight, summarise. */
  readonly signal?: AbortSignal;
  /** Wall clock for event lines (default Date.now). */
  readonly clock?: () => number;
}

export interface LineSummary {
  readonly attempts: number;
  readonly passed: number;
  readonly failed: Partial<Record<PackFailureCode, number>>;
  readonly meanMs: number;
  readonly maxMs: number;
  readonly outcomes: readonly AttemptOutcome[];
  /** 0 if every attempt passed, else EXIT_LINE_FAILURES. */
  readonly exitCode: number;
}

type PortState = { kind: 'running'; serial: string; step: AttemptStep } | { kind: 'done'; outcome: AttemptOutcome } | { kind: 'unplugged' };

const STEP_TEXT: Readonly<Record<AttemptStep, string>> = {
  open: 'opening port', identify: 'identifying', existing: 'checking identity', registry: 'checking registry', keygen: 'generating key on the pack',
  prove: 'proof of possession', issue: 'issuing certificate', setchain: 'writing chain', selftest: 'self-test', record: 'recording',
};

function timeOf(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23);
}

/** The text after the port name for a port's state. */
function stateText(s: PortState): string {
  if (s.kind === 'running') return `${s.serial}  ${STEP_TEXT[s.step]}...`;
  if (s.kind === 'unplugged') return 'unplugged: connect the next pack';
  return `${s.outcome.label}  (${(s.outcome.durationMs / 1000).toFixed(2)} s)${s.outcome.result === 'PASS' ? '  unplug the pack' : ''}`;
}

/**
 * The screen: on a TTY one line per port, redrawn in place (cursor up over the block, erase to the
 * end of the screen, draw again) with messages printed above the block; otherwise every change is
 * one timestamped line.
 */
export class LineScreen {
  private readonly order: string[] = [];
  private readonly states = new Map<string, PortState>();
  private drawn = 0;

  constructor(
    private readonly out: LineOutput,
    private readonly clock: () => number = Date.now,
  ) {}

  get tty(): boolean {
    return this.out.isTTY === true;
  }

  set(port: string, s: PortState): void {
    if (!this.states.has(port)) this.order.push(port);
    this.states.set(port, s);
    if (this.tty) this.redraw();
    else this.out.write(`${timeOf(this.clock())}  ${basename(port)}  ${stateText(s)}\n`);
  }

  /** The last words (the summary): below the block, which stays as it is. */
  final(text: string): void {
    this.out.write(`${text}\n`);
    this.drawn = 0;
  }

  /** A message that stays on screen (warnings), above the live block. */
  message(text: string): void {
    if (!this.tty) {
      this.out.write(`${text}\n`);
      return;
    }
    this.clear();
    this.out.write(`${text}\n`);
    this.redraw(false);
  }

  private clear(): void {
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }

  private redraw(clearFirst = true): void {
    if (clearFirst) this.clear();
    const width = Math.max(...this.order.map((p) => basename(p).length), 4);
    const cols = this.out.columns ?? 0;
    const lines = this.order.map((p) => {
      const line = `${basename(p).padEnd(width)}  ${stateText(this.states.get(p) ?? { kind: 'unplugged' })}`;
      return cols > 1 && line.length >= cols ? `${line.slice(0, cols - 2)}…` : line;
    });
    if (lines.length > 0) this.out.write(`${lines.join('\n')}\n`);
    this.drawn = lines.length;
  }
}

/** Summarises outcomes (also used by the CLI for --json). */
export function summarise(outcomes: readonly AttemptOutcome[]): LineSummary {
  const failed: Partial<Record<PackFailureCode, number>> = {};
  let passed = 0;
  for (const o of outcomes) {
    if (o.result === 'PASS') passed++;
    else if (o.code !== undefined) failed[o.code] = (failed[o.code] ?? 0) + 1;
  }
  const times = outcomes.map((o) => o.durationMs);
  const meanMs = times.length === 0 ? 0 : Math.round(times.reduce((a, b) => a + b, 0) / times.length);
  const maxMs = times.length === 0 ? 0 : Math.max(...times);
  return { attempts: outcomes.length, passed, failed, meanMs, maxMs, outcomes, exitCode: passed === outcomes.length ? 0 : EXIT_LINE_FAILURES };
}

/** The summary lines printed at the end of line mode. */
export function formatSummary(s: LineSummary): string {
  const fails = Object.entries(s.failed).map(([code, n]) => `${code} ${n}`);
  return [
    `summary: ${s.attempts} pack${s.attempts === 1 ? '' : 's'}, ${s.passed} PASS, ${s.attempts - s.passed} FAIL${fails.length > 0 ? ` (${fails.join(', ')})` : ''}`,
    `time per pack: mean ${(s.meanMs / 1000).toFixed(2)} s, max ${(s.maxMs / 1000).toFixed(2)} s`,
  ].join('\n');
}

/**
 * Runs line mode until `count` attempts have finished or `signal` aborts; resolves with the summary
 * (already printed). A station error from an attempt (REGISTRY, CA_CORRUPT) stops new attempts;
 * once those in flight are done it is rethrown. Throws USAGE / REGISTRY from the serial source.
 */
export async function runLine(o: LineOptions): Promise<LineSummary> {
  const screen = o.screen ?? new LineScreen(o.out, o.clock);
  const pollMs = o.pollMs ?? 500;
  const ports = new Map<string, PortState>();
  const running = new Set<Promise<void>>();
  const outcomes: AttemptOutcome[] = [];
  let started = 0;
  let stationError: unknown;
  let waitingSerialNoted = false;
  const enough = (): boolean => o.count !== undefined && started >= o.count;
  const stopping = (): boolean => o.signal?.aborted === true || stationError !== undefined || enough();

  const start = (port: string, serial: string): void => {
    started++;
    const set = (s: PortState): void => {
      const prev = ports.get(port);
      ports.set(port, s);
      if (s.kind === 'running' && prev?.kind === 'running' && prev.step === s.step) return; // nothing new to show
      screen.set(port, s);
    };
    set({ kind: 'running', serial, step: 'open' });
    const run = o
      .attempt(port, serial, (ev) => {
        set({ kind: 'running', serial, step: ev.step });
      })
      .then(
        (outcome) => {
          outcomes.push(outcome);
          if (outcome.result === 'FAIL') o.serials.giveBack(serial);
          set({ kind: 'done', outcome });
        },
        (e: unknown) => {
          stationError ??= e;
          o.serials.giveBack(serial);
          ports.set(port, { kind: 'unplugged' });
          screen.message(`${basename(port)}: station error: ${e instanceof Error ? e.message : String(e)}`);
        },
      );
    running.add(run);
    void run.finally(() => running.delete(run));
  };

  screen.message(`line mode: watching ${o.ports}; serials from ${o.serials.describe()}${o.count === undefined ? '' : `; stopping after ${o.count} packs`}`);
  while (!stopping()) {
    const present = new Set(expandPortGlob(o.ports));
    for (const [port, s] of ports) {
      if (present.has(port) || s.kind === 'running') continue;
      ports.delete(port); // unplugged: the next pack there is a new one
      if (s.kind === 'done') screen.set(port, { kind: 'unplugged' });
    }
    for (const port of present) {
      if (stopping()) break;
      const s = ports.get(port);
      if (s !== undefined && s.kind !== 'unplugged') continue;
      let serial: string | undefined;
      try {
        serial = await o.serials.next();
      } catch (e) {
        stationError ??= e; // a scanner file turned unreadable, the registry failed: stop cleanly
        screen.message(`serials: ${e instanceof Error ? e.message : String(e)}`);
        break;
      }
      if (serial === undefined) {
        if (!waitingSerialNoted) screen.message(`waiting for serials: ${o.serials.describe()} has none left (append to it, or stop with Ctrl-C)`);
        waitingSerialNoted = true;
        break;
      }
      waitingSerialNoted = false;
      start(port, serial);
    }
    if (stopping()) break;
    try {
      await sleep(pollMs, undefined, o.signal ? { signal: o.signal } : {});
    } catch {
      break; // aborted
    }
  }
  if (o.signal?.aborted === true && running.size > 0) screen.message(`stopping: finishing ${running.size} attempt${running.size === 1 ? '' : 's'} in progress`);
  while (running.size > 0) await Promise.all([...running]);
  if (stationError !== undefined) throw stationError instanceof Error ? stationError : new Error('provisioning: line mode stopped on a station error');
  const summary = summarise(outcomes);
  screen.final(formatSummary(summary));
  return summary;
}
