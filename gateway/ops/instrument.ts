/**
 * Operations hooks on the ingest pipeline's log port (gateway/ingest/log-port.ts) without touching
 * the pipeline: `instrumentLog` wraps an IngestLog so that every append is timed into a
 * LatencyHistogram (call to durable: what an ack waits for; metrics.ts exports it) and, once the
 * append has resolved — the frames are durable and about to be acked — hands the stored frames to
 * a listener (the MQTT publisher). Duplicates are never appended, so they are never republished.
 * Append failures are remembered for /healthz (`writable`) until an append succeeds again. A
 * listener that throws is counted and ignored: operations never break ingest.
 */
import { isGatewayError } from '../errors.js';
import type { IngestEntry, IngestLog } from '../ingest/log-port.js';
import type { LatencyHistogram } from './metrics.js';
import type { StoredFrame } from './mqtt.js';

export interface LogInstruments {
  readonly latency?: LatencyHistogram;
  /** Called after each durable append with its frames, in log order. */
  readonly stored?: (frames: readonly StoredFrame[]) => void;
  /** High-resolution clock in ms (default performance.now). */
  readonly clock?: () => number;
}

export interface InstrumentedLog extends IngestLog {
  /** False after an append failed, until one succeeds. */
  readonly writable: boolean;
  readonly lastError: string | undefined;
  readonly listenerErrors: number;
}

/** Wraps `log`; the wrapper honours the IngestLog contract unchanged (same results, same errors). */
export function instrumentLog(log: IngestLog, o: LogInstruments): InstrumentedLog {
  const clock = o.clock ?? (() => performance.now());
  let writable = true;
  let lastError: string | undefined;
  let listenerErrors = 0;
  return {
    get size() {
      return log.size;
    },
    get writable() {
      return writable;
    },
    get lastError() {
      return lastError;
    },
    get listenerErrors() {
      return listenerErrors;
    },
    async append(entries: readonly IngestEntry[]): Promise<number> {
      const t0 = clock();
      let first: number;
      try {
        first = await log.append(entries);
      } catch (e) {
        // Quota, I/O and a closed store stop all appends; a bad item (STORE_INPUT) is that item's problem.
        if (!isGatewayError(e, 'STORE_INPUT')) {
          writable = false;
          lastError = e instanceof Error ? e.message : String(e);
        }
        throw e;
      }
      o.latency?.observe((clock() - t0) / 1000);
      writable = true;
      lastError = undefined;
      if (o.stored !== undefined) {
        try {
          o.stored(entries.map((e) => ({ serial: e.serial, cose: e.leaf.frame, receivedAt: e.leaf.receivedAt, source: e.leaf.source })));
        } catch {
          listenerErrors++;
        }
      }
      return first;
    },
    frameIdentity: (serial, counter) => log.frameIdentity(serial, counter),
    leaves: (from, to) => log.leaves(from, to),
  };
}
