/**
 * The contract between device transports and the gateway pipeline (STYLE.md habit 4): whatever
 * carries a pack's bytes — a USB-serial port (docs/protocol.md §5), BLE GATT notifications (§6) or
 * memory in unit tests — reaches the pipeline as whole protocol messages on a `DeviceChannel`, plus
 * `reject` events for what could not be decoded or was over a cap. A channel is one connection: a
 * replug or a BLE reconnect is a new channel with the same `id`, announced by a new `open` (the
 * pipeline then sends `Q hello` and the device resends what is unacknowledged, §4.3). Transports own
 * framing, integrity checks, caps and reconnection; they never judge authenticity (the pipeline
 * verifies COSE signatures and certificate chains).
 */
import type { Message, ProtocolErrorCode } from '../../protocol/index.js';

/** What kind of link a channel runs over. */
export type TransportKind = 'serial' | 'ble' | 'memory';

/**
 * One connection to one device, from `open` to `close`. Contract:
 * - `send` resolves once the message is handed to the port or every chunk of it is written over
 *   GATT; messages are written in `send` order. It rejects with GatewayError TRANSPORT_DOWN when the
 *   channel is closed or closes first, TRANSPORT_WRITE when the write fails or does not complete in
 *   time (the channel is then closed), and with the ProtocolError of encodeMessage (MSG_MALFORMED,
 *   MSG_TOO_LARGE) for a message that cannot be encoded — a caller bug.
 * - `close` ends this connection (idempotent); a `close` event follows. The transport reconnects
 *   after its backoff as after any drop: to keep a device off, remove it from the configuration.
 */
export interface DeviceChannel {
  /** Stable per device endpoint across reconnects: 'serial:/dev/ttyUSB0', 'ble:C0:DE:00:07:00:04'. */
  readonly id: string;
  /** The log leaf's source text (protocol leaf.ts, 1..128 characters, no control characters). */
  readonly source: string;
  readonly kind: TransportKind;
  /** Wall clock (ms since the epoch) when the connection opened. */
  readonly openedAt: number;
  /** False once the connection has closed. */
  readonly isOpen: boolean;
  send(msg: Message): Promise<void>;
  close(reason?: string): Promise<void>;
}

/**
 * Codes of `reject` events. Protocol decoder codes pass through unchanged (LINE_CRC, LINE_GARBAGE,
 * LINE_TOO_LONG, LINE_TRUNCATED, BLE_CRC, BLE_SEQUENCE, MSG_*, CBOR_*, ...); the transport adds
 * RATE_LIMITED (input over the port's cap, dropped) and QUEUE_OVERFLOW (messages that arrived
 * while a BLE connection was still being set up, beyond the small queue kept for them).
 */
export type RejectCode = ProtocolErrorCode | 'RATE_LIMITED' | 'QUEUE_OVERFLOW';

/**
 * The pipeline's side. Handlers run synchronously on the transport's event path; a handler that
 * throws (or returns a promise that rejects) is counted in `status().handlerErrors` and never stops
 * the transport. Every `open` is followed by exactly one `close` for the same channel (at the
 * latest when the transport stops); `message` and `reject` come only between them.
 */
export interface ChannelEvents {
  /**
   * Back-pressure from the pipeline, when it has any: while `held`, a transport that can hold input
   * back stops reading (serial: the port is paused, the bytes wait in the kernel's tty buffer and
   * then in the device, which keeps every unacked frame anyway) and reads again when it is released.
   * A transport that cannot (BLE notifications) ignores it; the pipeline's caps still apply.
   */
  readonly flow?: InputFlow;
  /** A (re)connection: the pipeline sends `Q hello` (docs/protocol.md §4.4). */
  open(ch: DeviceChannel): void;
  message(ch: DeviceChannel, msg: Message): void;
  /** A line or chunk the decoder refused, or input dropped over a cap. `raw` is a short printable preview. */
  reject(ch: DeviceChannel, code: RejectCode, detail: string, raw?: string): void;
  close(ch: DeviceChannel, reason: string): void;
}

/** Whether the pipeline wants input held back now, and a way to hear when that changes. */
export interface InputFlow {
  readonly held: boolean;
  /** Calls `listener` on every change of `held` until the returned function is called. */
  watch(listener: (held: boolean) => void): () => void;
}

/** Where a device endpoint stands. */
export type EndpointState =
  /** Connected: a channel is open. */
  | 'open'
  /** An open or connect attempt is running. */
  | 'connecting'
  /** Waiting out the reconnect backoff (see `nextAttemptAt`). */
  | 'waiting'
  /** Not there now (a serial path that does not exist, a glob match that vanished); retried when it appears. */
  | 'absent'
  /** A serial path that another configured name already has open (same device node). */
  | 'duplicate';

export interface EndpointStatus {
  readonly id: string;
  readonly state: EndpointState;
  /** Successful opens; every one after the first is a reconnect. */
  readonly connects: number;
  readonly disconnects: number;
  /** Open or connect attempts that failed (ENOENT while unplugged, BLE connect refused, ...). */
  readonly failures: number;
  readonly lastError: string | undefined;
  /** Wall ms of the current connection's open, if open. */
  readonly openSince: number | undefined;
  /** Wall ms of the next attempt, if waiting. */
  readonly nextAttemptAt: number | undefined;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly messagesIn: number;
  readonly messagesOut: number;
  /** Rejected lines, chunks or messages by code; RATE_LIMITED counts each dropped line, chunk or read. */
  readonly rejects: Readonly<Partial<Record<RejectCode, number>>>;
  /** Input bytes dropped over the byte-rate cap. */
  readonly droppedBytes: number;
}

export interface TransportStatus {
  readonly kind: TransportKind;
  readonly state: 'idle' | 'running' | 'stopped';
  readonly endpoints: readonly EndpointStatus[];
  /** Channels open now. */
  readonly open: number;
  /** Opens after an endpoint's first, summed over endpoints. */
  readonly reconnects: number;
  /** Rejects by code, summed over endpoints. */
  readonly rejects: Readonly<Partial<Record<RejectCode, number>>>;
  /** Event handlers that threw or rejected. */
  readonly handlerErrors: number;
  readonly lastHandlerError: string | undefined;
  /** Transport-specific figures (serial: polls; BLE: sessions, recycles, bus errors, match rules). */
  readonly detail: Readonly<Record<string, number | string | boolean | undefined>>;
}

/** A source of device channels. `start` resolves once the transport runs; devices come and go after. */
export interface Transport {
  /** Throws GatewayError TRANSPORT_STATE when called twice or after stop. */
  start(events: ChannelEvents): Promise<void>;
  /** Closes every channel (each gets its `close` event) and stops reconnecting. Idempotent. */
  stop(): Promise<void>;
  status(): TransportStatus;
}
