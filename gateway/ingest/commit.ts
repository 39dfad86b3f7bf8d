/**
 * The storage stage of the ingest pipeline: frames that dedupe classified as new go into a queue,
 * leave it in group commits of up to `batch` frames with at most `appends` append calls outstanding
 * (the LogStore coalesces them into fsynced commits), and come back in log order — the `stored`
 * callback runs for each commit only after every earlier commit's callback, so the pipeline commits
 * counters and sends acks in exactly the order the log holds the frames (DESIGN.md decision 4: ack
 * only what is durable). A failed append hands its whole batch to `failed`; nothing of it is acked.
 */
import type { LogLeaf } from '../../protocol/index.js';
import type { EncodedLeaf } from '../store/appender.js';
import type { DeviceChannel } from '../transport/types.js';
import type { FrameIdentity } from './dedupe.js';
import type { IngestLog } from './log-port.js';

/** A frame on its way into the log: an IngestEntry (leaf, serial, counter) plus where to ack it. */
export interface ToStore {
  readonly ch: DeviceChannel;
  readonly serial: string;
  readonly counter: number;
  /** The frame's identity: its signed payload (the dedupe key, dedupe.ts frameIdentity). */
  readonly identity: FrameIdentity;
  readonly leaf: LogLeaf;
  /** The leaf's encoding and leaf hash from the verification step. */
  readonly encoded?: EncodedLeaf;
}

export interface CommitterHooks {
  /** The batch is durable; `first` is the log index of its first frame. */
  stored(batch: readonly ToStore[], first: number): void;
  failed(batch: readonly ToStore[], error: unknown): void;
}

export class Committer {
  private readonly queue: ToStore[] = [];
  private outstanding = 0;
  private chain: Promise<void> = Promise.resolve();
  private scheduled = false;

  constructor(
    private readonly log: IngestLog,
    private readonly limits: { readonly batch: number; readonly appends: number },
    private readonly hooks: CommitterHooks,
  ) {}

  /** Frames queued or being appended. */
  get pending(): number {
    return this.queue.length + this.outstanding;
  }

  push(p: ToStore): void {
    this.queue.push(p);
    if (this.scheduled) return;
    this.scheduled = true;
    // One turn of the event loop gathers everything verified meanwhile into the next group commit.
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.queue.length > 0 && this.outstanding < this.limits.appends) {
      const batch = this.queue.splice(0, this.limits.batch);
      this.outstanding++;
      let done: Promise<number>;
      try {
        done = this.log.append(batch); // a ToStore is an IngestEntry plus routing
      } catch (e) {
        done = Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
      this.chain = this.chain.then(() =>
        done
          .then(
            (first) => {
              this.hooks.stored(batch, first);
            },
            (e: unknown) => {
              this.hooks.failed(batch, e);
            },
          )
          .finally(() => {
            this.outstanding--;
            if (this.queue.length > 0) this.flush();
          }),
      );
    }
  }

  /** Resolves once every queued frame has been appended (or failed) and its hook has run. */
  async drain(): Promise<void> {
    while (this.pending > 0) {
      this.flush();
      await this.chain;
      await new Promise<void>((r) => setImmediate(r));
    }
  }
}
