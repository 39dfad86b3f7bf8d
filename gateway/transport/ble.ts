/**
 * Packs over BLE (issue 6 item 2; docs/protocol.md §6) through BlueZ with node-ble 1.13. A scan loop
 * keeps a discovery session running, lists the adapter's devices, keeps those whose UUIDs carry the
 * packchain service (optionally only allow-listed addresses), and connects up to `maxDevices` of
 * them, a few at a time: Connect → (first time) GATT lookup → StartNotify → `open`. Chunks are
 * reassembled per connection (protocol Reassembler, ticked for timeouts), messages are written as
 * protocol chunkMessage chunks with write-without-response (quirk 7), 20 bytes by default because
 * node-ble never reads the MTU (quirk 9). A dropped link closes the channel and reconnects after an
 * exponential backoff with jitter.
 *
 * Surviving BlueZ and D-Bus (docs/hw-sim.md §4 quirks): one Device and one characteristic object per
 * device per session, reused across reconnects, so reconnects add no match rules and no duplicate
 * listeners; GATT lookups only after ServicesResolved is read true (quirk 3); every call timed;
 * `startDiscovery` errors while Discovering are benign (quirk 1). The session (ble-session.ts) is
 * replaced — every channel closed, a new D-Bus connection, devices reconnected — when the bus
 * reports an error, when an adapter call fails, and before its match rules reach the bus's limit.
 */
import { BLE_GATT, BLE_LIMITS } from '../../protocol/index.js';
import { GatewayError } from '../errors.js';
import { BleEndpoint, type BleEndpointContext } from './ble-endpoint.js';
import { BleSession, clearInternalListeners, dbusErrorName, errorText, type BleDevice } from './ble-session.js';
import { InputGate, SafeEvents, totals, type Channel, type RateCaps } from './endpoint.js';
import { Backoff, integerIn, monotonic, positive, type BackoffOptions } from './limits.js';
import type { ChannelEvents, EndpointStatus, Transport, TransportStatus } from './types.js';

export interface BleTransportOptions {
  /** BlueZ adapter (`hci0`); default the first one BlueZ lists. */
  readonly adapter?: string;
  /** D-Bus address of the bus BlueZ is on; default the system bus. Tests pass a private bus. */
  readonly busAddress?: string;
  /** Connect only these addresses (any case); default every device advertising the packchain service. */
  readonly addresses?: readonly string[];
  /** Devices connected at once (default 7: many controllers take 5–10 LE links). */
  readonly maxDevices?: number;
  /** Connection attempts at once (default 2). */
  readonly connectConcurrency?: number;
  /** Between scans: device list, health check, connects (default 2000 ms). */
  readonly scanIntervalMs?: number;
  /** Deadline of Connect, and of the GATT lookup after a first connect (default 15000 ms). */
  readonly connectTimeoutMs?: number;
  /** Any other D-Bus call (default 5000 ms). */
  readonly callTimeoutMs?: number;
  /** Chunk size for writes, ATT_MTU − 3 (20..244, default 20: node-ble never reads the MTU). */
  readonly chunkSize?: number;
  /** Reconnect backoff per device (default 500 ms doubling to 30 s). */
  readonly backoff?: BackoffOptions;
  /** Backoff between failed sessions, e.g. while BlueZ is down (default 1 s doubling to 30 s). */
  readonly sessionBackoff?: BackoffOptions;
  /** Replace the session once it holds this many match rules (default 400, at least 8 × maxDevices; the system bus allows 512). */
  readonly matchRuleBudget?: number;
  /** Longest silence inside a message before BLE_TIMEOUT (default 2000 ms). */
  readonly reassemblyTimeoutMs?: number;
  /** Largest accepted BLE message, 5..4096 (default 4096). */
  readonly maxMessageBytes?: number;
  /** Per-device input caps (default 200 messages/s, 64 KiB/s). */
  readonly rate?: RateCaps;
  /** One chunk write (default 5000 ms). */
  readonly writeTimeoutMs?: number;
  /** Jitter source (default Math.random). */
  readonly random?: () => number;
}

/** A connection that lasted this long resets its device's backoff; a session this old its backoff. */
const STABLE_MS = 10_000;
/** A device whose UUIDs lacked the packchain service is looked at again after this long. */
const FOREIGN_RECHECK_MS = 30_000;

export class BleTransport implements Transport {
  private readonly o: Required<Omit<BleTransportOptions, 'adapter' | 'busAddress' | 'addresses' | 'rate' | 'backoff' | 'sessionBackoff' | 'random'>>;
  private readonly allow: ReadonlySet<string> | undefined;
  private readonly endpoints = new Map<string, BleEndpoint>();
  private readonly foreign = new Map<string, number>();
  private readonly inflight = new Set<Promise<void>>();
  private readonly sessionBackoff: Backoff;
  private events: SafeEvents | undefined;
  private state: 'idle' | 'running' | 'stopped' = 'idle';
  private session: BleSession | undefined;
  private sessionRetryAt = 0;
  private scanTimer: NodeJS.Timeout | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private readonly stats = { scans: 0, sessions: 0, recycles: 0, lastRecycle: undefined as string | undefined, sessionErrors: 0, lastSessionError: undefined as string | undefined, powered: undefined as boolean | undefined, discoveryErrors: 0 };

  /** Checks the options; throws GatewayError TRANSPORT_CONFIG naming the bad one. */
  constructor(private readonly options: BleTransportOptions = {}) {
    this.o = {
      maxDevices: options.maxDevices ?? 7,
      connectConcurrency: options.connectConcurrency ?? 2,
      scanIntervalMs: options.scanIntervalMs ?? 2000,
      connectTimeoutMs: options.connectTimeoutMs ?? 15_000,
      callTimeoutMs: options.callTimeoutMs ?? 5000,
      chunkSize: options.chunkSize ?? BLE_LIMITS.minChunk,
      matchRuleBudget: options.matchRuleBudget ?? 400,
      reassemblyTimeoutMs: options.reassemblyTimeoutMs ?? BLE_LIMITS.defaultTimeoutMs,
      maxMessageBytes: options.maxMessageBytes ?? BLE_LIMITS.maxMessage,
      writeTimeoutMs: options.writeTimeoutMs ?? 5000,
    };
    integerIn(this.o.maxDevices, 1, 1000, 'maxDevices');
    integerIn(this.o.connectConcurrency, 1, 100, 'connectConcurrency');
    integerIn(this.o.chunkSize, BLE_LIMITS.minChunk, BLE_LIMITS.maxChunk, 'chunkSize');
    integerIn(this.o.maxMessageBytes, BLE_LIMITS.minMessage, BLE_LIMITS.maxMessage, 'maxMessageBytes');
    // A fresh session must be able to connect maxDevices packs (about 5 rules each: Device1 and four
    // characteristics) without hitting the budget at once, or it would be replaced over and over.
    integerIn(this.o.matchRuleBudget, 8 * this.o.maxDevices, 100_000, 'matchRuleBudget (8 per device of maxDevices at least)');
    for (const k of ['scanIntervalMs', 'connectTimeoutMs', 'callTimeoutMs', 'reassemblyTimeoutMs', 'writeTimeoutMs'] as const) positive(this.o[k], k);
    if (options.addresses !== undefined) {
      const bad = options.addresses.find((a) => !/^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/.test(a));
      if (bad !== undefined) throw new GatewayError('TRANSPORT_CONFIG', `gateway: transport: ble: addresses entry ${JSON.stringify(bad)} is not a Bluetooth address AA:BB:CC:DD:EE:FF`);
      this.allow = new Set(options.addresses.map((a) => a.toUpperCase()));
    }
    new InputGate(options.rate);
    new Backoff(this.deviceBackoff());
    this.sessionBackoff = new Backoff({ initialMs: 1000, maxMs: 30_000, ...options.sessionBackoff }, options.random);
  }

  /**
   * Opens the first session and scans once; devices connect in the background after that. BlueZ
   * being absent is not an error here (status shows it; the session is retried). Throws
   * TRANSPORT_STATE if the transport is not new.
   */
  async start(events: ChannelEvents): Promise<void> {
    if (this.state !== 'idle') throw new GatewayError('TRANSPORT_STATE', `gateway: transport: BLE transport is ${this.state}; expected a new transport`);
    this.events = new SafeEvents(events);
    this.state = 'running';
    const tickMs = Math.max(50, Math.min(1000, this.o.reassemblyTimeoutMs / 2));
    this.tickTimer = setInterval(() => {
      const now = monotonic();
      for (const ep of this.endpoints.values()) ep.tick(now);
    }, tickMs);
    await this.scanLoop();
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    clearTimeout(this.scanTimer);
    clearInterval(this.tickTimer);
    await this.scanning;
    const s = this.session;
    this.session = undefined;
    await Promise.all([...this.endpoints.values()].map((ep) => this.drop(ep, 'transport stopped', s)));
    await Promise.all([...this.inflight]);
    if (s?.startedDiscovery) await s.adapter().then((a) => s.timed(a.stopDiscovery(), 'StopDiscovery', 2000)).catch(() => undefined);
    s?.destroy();
  }

  status(): TransportStatus {
    const endpoints: EndpointStatus[] = [...this.endpoints.values()].map((ep) => ep.counters.status(ep.id, ep.state, ep.isOpen ? ep.channel?.openedAt : undefined, ep.nextAttemptAt));
    const s = this.session;
    return {
      kind: 'ble',
      state: this.state,
      endpoints,
      ...totals(endpoints),
      handlerErrors: this.events?.errors ?? 0,
      lastHandlerError: this.events?.lastError,
      detail: { ...this.stats, adapter: s?.adapterId, matchRules: s?.matchRules, sessionUp: s !== undefined && s.failure === undefined, foreignDevices: this.foreign.size },
    };
  }

  private deviceBackoff(): BackoffOptions {
    return { initialMs: 500, maxMs: 30_000, ...this.options.backoff };
  }

  private running(): boolean {
    return this.state === 'running';
  }

  private async scanLoop(): Promise<void> {
    if (!this.running() || this.scanning) return;
    this.scanning = this.scan().catch((e: unknown) => {
      this.stats.lastSessionError = `scan: ${errorText(e)}`;
    });
    await this.scanning;
    this.scanning = undefined;
    if (this.running()) this.scanTimer = setTimeout(() => void this.scanLoop(), this.o.scanIntervalMs);
  }

  /** A session just failed: scan (and so recycle) now rather than at the next interval. */
  private scanSoon(): void {
    if (!this.running() || this.scanning) return;
    clearTimeout(this.scanTimer);
    this.scanTimer = setTimeout(() => void this.scanLoop(), 0);
  }

  private async scan(): Promise<void> {
    this.stats.scans += 1;
    let s = this.session;
    if (s?.failure !== undefined) {
      await this.recycle(s, s.failure);
      s = undefined;
    }
    if (!s) {
      if (monotonic() < this.sessionRetryAt) return;
      s = await this.openSession();
      if (!s) return;
    }
    try {
      const adapter = await s.adapter();
      this.stats.powered = await s.timed(adapter.isPowered(), 'reading Powered');
      if (!this.stats.powered) return; // an operator's decision (rfkill, bluetoothctl): reported, not overridden
      if (!(await s.timed(adapter.isDiscovering(), 'reading Discovering'))) {
        try {
          await s.timed(adapter.startDiscovery(), 'StartDiscovery');
          s.startedDiscovery = true;
        } catch {
          this.stats.discoveryErrors += 1; // another client may have started one meanwhile (quirk 1)
        }
      }
      const addresses = (await s.timed(adapter.devices(), 'listing devices')).map((a) => a.toUpperCase());
      await this.classify(s, addresses);
    } catch (e) {
      s.fail(`adapter: ${errorText(e)}`);
      return;
    }
    if (s.matchRules >= this.o.matchRuleBudget) s.retire(`match-rule budget reached (${s.matchRules} of ${this.o.matchRuleBudget})`);
    else if (monotonic() - s.createdAt > STABLE_MS) this.sessionBackoff.reset();
    this.connectSome();
  }

  private async openSession(): Promise<BleSession | undefined> {
    this.stats.sessions += 1;
    const s = new BleSession({
      busAddress: this.options.busAddress,
      adapter: this.options.adapter,
      callTimeoutMs: this.o.callTimeoutMs,
      onFailure: (reason) => {
        this.stats.sessionErrors += 1;
        this.stats.lastSessionError = reason;
        this.scanSoon();
      },
    });
    try {
      await s.adapter();
    } catch (e) {
      s.fail(`no adapter: ${errorText(e)}`);
      s.destroy();
      this.sessionRetryAt = monotonic() + this.sessionBackoff.next();
      return undefined;
    }
    this.session = s;
    return s;
  }

  /** Closes every channel of a broken session and drops it; the next scan opens a new one. */
  private async recycle(s: BleSession, reason: string): Promise<void> {
    this.stats.recycles += 1;
    this.stats.lastRecycle = reason;
    this.session = undefined;
    await Promise.all([...this.endpoints.values()].map((ep) => this.drop(ep, `BLE session replaced (${reason})`, s)));
    s.destroy();
    this.sessionRetryAt = monotonic() + this.sessionBackoff.next();
  }

  /** Ends whatever `ep` has going (channel, attempt, timer) and disconnects it, best effort. */
  private async drop(ep: BleEndpoint, reason: string, s: BleSession | undefined): Promise<void> {
    ep.attempt += 1;
    clearTimeout(ep.timer);
    ep.timer = undefined;
    const device = ep.device;
    const had = ep.channel !== undefined;
    ep.finish(this.ctx(), reason);
    ep.state = ep.state === 'absent' ? 'absent' : 'waiting';
    ep.nextAttemptAt = undefined;
    if (had && device && s && s.failure === undefined) await s.timed(device.disconnect(), 'Disconnect', 2000).catch(() => undefined);
  }

  /** Learns which listed devices are packchain packs (Device1.UUIDs) and which went away. */
  private async classify(s: BleSession, addresses: readonly string[]): Promise<void> {
    const listed = new Set(addresses);
    for (const ep of this.endpoints.values()) {
      if (!listed.has(ep.address) && (ep.state === 'waiting' || ep.state === 'absent')) {
        clearTimeout(ep.timer);
        ep.state = 'absent';
        ep.nextAttemptAt = undefined;
      } else if (listed.has(ep.address) && ep.state === 'absent') {
        ep.state = 'waiting';
      }
    }
    const now = monotonic();
    const unknown = addresses.filter((a) => !this.endpoints.has(a) && (this.allow?.has(a) ?? true) && now - (this.foreign.get(a) ?? -Infinity) >= FOREIGN_RECHECK_MS);
    await Promise.all(
      unknown.map(async (address) => {
        let uuids: unknown;
        try {
          uuids = await s.getProperty(s.devicePath(address), 'org.bluez.Device1', 'UUIDs');
        } catch {
          return; // gone again, or BlueZ busy: looked at next scan
        }
        if (Array.isArray(uuids) && uuids.some((u) => typeof u === 'string' && u.toLowerCase() === BLE_GATT.service)) {
          this.foreign.delete(address);
          this.endpoints.set(address, new BleEndpoint(address, new InputGate(this.options.rate), new Backoff(this.deviceBackoff(), this.options.random)));
        } else {
          this.foreign.set(address, now);
        }
      }),
    );
  }

  /** Starts attempts for waiting devices whose backoff is over, within maxDevices and the concurrency. */
  private connectSome(): void {
    const s = this.session;
    if (!this.running() || !s || s.failure !== undefined) return;
    const eps = [...this.endpoints.values()];
    let busy = eps.filter((e) => e.state === 'open' || e.state === 'connecting').length;
    let connecting = eps.filter((e) => e.state === 'connecting').length;
    const now = Date.now();
    const ready = eps.filter((e) => e.state === 'waiting' && (e.nextAttemptAt ?? 0) <= now).sort((a, b) => (a.nextAttemptAt ?? 0) - (b.nextAttemptAt ?? 0));
    for (const ep of ready) {
      if (busy >= this.o.maxDevices || connecting >= this.o.connectConcurrency) return;
      busy += 1;
      connecting += 1;
      const p = this.connect(ep, s).finally(() => {
        this.inflight.delete(p);
        this.connectSome();
      });
      this.inflight.add(p);
    }
  }

  /** The endpoint's view of this transport. */
  private ctx(): BleEndpointContext {
    const events = this.events;
    if (!events) throw new Error('gateway: invariant violated: BLE transport used before start');
    return {
      events,
      chunkSize: this.o.chunkSize,
      writeTimeoutMs: this.o.writeTimeoutMs,
      reassembly: { maxMessage: this.o.maxMessageBytes, timeoutMs: this.o.reassemblyTimeoutMs },
      close: (ep, ch, reason) => this.closeChannel(ep, ch, reason),
    };
  }

  /** One connection attempt; never throws. Ends announced (`open`) or scheduled for a retry. */
  private async connect(ep: BleEndpoint, s: BleSession): Promise<void> {
    const gen = ++ep.attempt;
    const live = (): boolean => this.running() && this.session === s && ep.attempt === gen;
    const ctx = this.ctx();
    ep.state = 'connecting';
    ep.nextAttemptAt = undefined;
    ep.bind(s);
    let device: BleDevice | undefined;
    try {
      device = ep.device ?? (await s.timed((await s.adapter()).getDevice(ep.address), 'finding the device'));
      ep.device = device;
      if (!ep.listening) {
        const d = device;
        d.on('disconnect', () => {
          this.linkLost(ep, d);
        });
        ep.listening = true;
      }
      const ch = ep.begin(ctx);
      clearInternalListeners(device); // quirk 4: node-ble adds one re-emitter per connect() call
      await s.timed(device.connect(), 'Connect', this.o.connectTimeoutMs).catch((e: unknown) => {
        if (dbusErrorName(e) !== 'org.bluez.Error.AlreadyConnected') throw e;
      });
      if (!live()) return;
      if (!ep.notify || !ep.write) await ep.lookup(s, device, this.o.connectTimeoutMs);
      const notify = ep.notify;
      if (!live() || !notify) return;
      clearInternalListeners(notify); // startNotifications adds one re-emitter per call
      await s.timed(notify.startNotifications(), 'StartNotify').catch((e: unknown) => {
        if (dbusErrorName(e) !== 'org.bluez.Error.InProgress') throw e; // BlueZ kept our session across the link
      });
      if (!live()) return;
      ep.announce(ctx, ch);
    } catch (e) {
      if (!live()) return;
      ep.counters.failures += 1;
      ep.counters.lastError = errorText(e);
      // The object left BlueZ's tree (a temporary device expired) or its GATT layout changed: look it up afresh.
      if (dbusErrorName(e) === 'org.freedesktop.DBus.Error.UnknownObject' || /Device not found|Service not available|Characteristic not available/.test(errorText(e))) ep.forget();
      ep.finish(ctx, `connect failed: ${errorText(e)}`);
      this.retry(ep); // first: 'waiting', so the 'disconnect' our Disconnect causes is no link loss
      if (device) await s.timed(device.disconnect(), 'Disconnect', 2000).catch(() => undefined);
    }
  }

  /** node-ble's 'disconnect' (Connected went false): possibly several per change (quirk 4), possibly ours. */
  private linkLost(ep: BleEndpoint, device: BleDevice): void {
    if (ep.device !== device || !this.running()) return;
    if (ep.state !== 'open' && ep.state !== 'connecting') return; // our own Disconnect, or a repeat
    ep.attempt += 1;
    ep.finish(this.ctx(), 'link lost');
    this.retry(ep);
  }

  /** Channel.close or a failed write: close, disconnect, reconnect after the backoff. */
  private async closeChannel(ep: BleEndpoint, ch: Channel, reason: string): Promise<void> {
    if (ep.channel !== ch) return;
    ep.attempt += 1;
    ep.finish(this.ctx(), reason);
    this.retry(ep); // first: 'waiting', so the 'disconnect' our Disconnect causes is no link loss
    const device = ep.device;
    const s = ep.session;
    if (device && s && s === this.session) await s.timed(device.disconnect(), 'Disconnect', 2000).catch(() => undefined);
  }

  /** Waits out the device's backoff (reset after a stable connection), then tries again. */
  private retry(ep: BleEndpoint): void {
    clearTimeout(ep.timer);
    ep.state = 'waiting';
    if (!this.running()) return;
    if (ep.upFor >= STABLE_MS) ep.backoff.reset();
    ep.upFor = 0;
    const wait = ep.backoff.next();
    ep.nextAttemptAt = Date.now() + wait;
    ep.timer = setTimeout(() => {
      ep.timer = undefined;
      this.connectSome();
    }, wait);
  }
}
