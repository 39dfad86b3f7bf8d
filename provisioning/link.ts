/**
 * The station's link to one pack, below PackSession (device.ts): something that carries protocol
 * Messages (docs/protocol.md §4) to the pack and delivers what comes back, already decoded. Two
 * implementations: the serial line (serial-link.ts: serialport 13, §5 lines) and BLE (ble-link.ts:
 * node-ble over BlueZ, §6 chunks). A link is opened by its own factory, which throws NO_DEVICE when
 * the pack cannot be reached; from then on it has one life: it delivers until it closes — unplug,
 * link loss, write failure or `close()` — and reports that once, as DEVICE_LOST. Events that happen
 * before PackSession attaches (a hello sent the moment the link came up) are kept and replayed.
 */
import type { DecodeEvent, Message } from '../protocol/index.js';
import { ProvisioningError } from './errors.js';

/** What a link tells its session. */
export interface PackLinkEvents {
  /** `bytes` arrived from the pack and decoded into `events`: messages and noise (line or chunk errors). */
  received(bytes: number, events: readonly DecodeEvent[]): void;
  /** The link is gone (called once, with a DEVICE_LOST error); afterwards nothing arrives and `send` rejects. */
  closed(err: ProvisioningError): void;
}

/**
 * Contract: `attach` once; `send` writes one whole message (messages never interleave on the wire)
 * and rejects with ProvisioningError DEVICE_LOST when the link is down or the write fails; `close`
 * is idempotent, never throws, and reports `closed` if it had not been reported yet.
 */
export interface PackLink {
  /** What the technician calls this pack's connection, for messages and the registry: the port path, or `ble:AA:BB:CC:DD:EE:FF`. */
  readonly name: string;
  attach(events: PackLinkEvents): void;
  send(msg: Message): Promise<void>;
  close(): Promise<void>;
}

/** Keeps a link's events until its session attaches, and makes `closed` happen once. */
export class LinkEvents {
  private target: PackLinkEvents | undefined;
  private readonly early: ((t: PackLinkEvents) => void)[] = [];
  private lostError: ProvisioningError | undefined;

  /** The error the link closed with, once it has. */
  get lost(): ProvisioningError | undefined {
    return this.lostError;
  }

  /** Throws Error on a second attach (a broken invariant: one session per link). */
  attach(events: PackLinkEvents): void {
    if (this.target) throw new Error('provisioning: invariant violated: a pack link attached twice');
    this.target = events;
    for (const run of this.early.splice(0)) run(events);
  }

  received(bytes: number, events: readonly DecodeEvent[]): void {
    if (this.lostError) return;
    this.emit((t) => {
      t.received(bytes, events);
    });
  }

  /** Records the first reason the link went away and reports it; later calls are ignored. */
  close(err: ProvisioningError): void {
    if (this.lostError) return;
    this.lostError = err;
    this.emit((t) => {
      t.closed(err);
    });
  }

  /** `close(err)`, then the error the link closed with (the first one, which may be an earlier one). */
  fail(err: ProvisioningError): ProvisioningError {
    this.close(err);
    return this.lostError ?? err;
  }

  private emit(run: (t: PackLinkEvents) => void): void {
    if (this.target) run(this.target);
    else this.early.push(run);
  }
}
