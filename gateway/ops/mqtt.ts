/**
 * Optional live telemetry over MQTT (mqtt 5.16; docs/gateway.md "Home Assistant"): the latest
 * stored frame of each pack as a retained state message, Home Assistant discovery configs, and a
 * retained availability topic with a last will, so "offline" appears when the gateway dies.
 * Telemetry is a convenience beside the signed log, never in its way: `offer()` is synchronous,
 * never throws and never waits; while the broker is unreachable messages are dropped and counted
 * (mqtt.js's offline queue is off, so memory does not grow), the library reconnects on its own,
 * and a client that falls behind (too many publishes not yet written) drops instead of buffering.
 * Per pack at most one state message goes out per `minIntervalMs`: a frame arriving sooner
 * replaces the pending one (the latest wins; counted as coalesced) and is sent when the interval
 * ends. Frames are decoded only when sent. Discovery goes out once per pack per connection, and
 * again when Home Assistant announces a restart on `<discoveryPrefix>/status`.
 */
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { decodeFrame, parseSign1, type SohFrame } from '../../protocol/index.js';
import type { Logger } from './logger.js';
import { availabilityTopic, gatewayDiscovery, haStatusTopic, OFFLINE, ONLINE, packDiscovery, stateMessage, stateTopic, type TopicOptions } from './mqtt-topics.js';
import type { MqttSnapshot } from './snapshot.js';

export interface MqttPublisherOptions extends TopicOptions {
  readonly url: string;
  readonly username?: string | null;
  /** The password itself (the daemon reads mqtt.passwordFile); never logged. */
  readonly password?: string | null;
  /** Default packchain-<gateway>. */
  readonly clientId?: string | null;
  readonly discovery?: boolean;
  /** Default 5000. */
  readonly minIntervalMs?: number;
  readonly qos?: 0 | 1;
  /** packchain version, in discovery `origin` and the gateway device. */
  readonly version?: string;
  /** Wait between reconnect attempts (default 5000 ms) and for CONNACK (default 10000 ms). */
  readonly reconnectPeriodMs?: number;
  readonly connectTimeoutMs?: number;
  readonly logger?: Logger;
  /** Monotonic-enough clock for the rate limit, ms (default Date.now). */
  readonly now?: () => number;
}

/** One stored frame, as the log holds it (instrument.ts hands these over after the append is durable). */
export interface StoredFrame {
  readonly serial: string;
  /** The COSE_Sign1 bytes as received (verified by the pipeline). */
  readonly cose: Uint8Array;
  readonly receivedAt: number;
  readonly source: string;
}

/** Publishes written to the socket but not yet called back; beyond this the client is behind: drop. */
const MAX_PENDING = 1000;
/** How long close() waits for the broker to take the "offline" message. */
const CLOSE_TIMEOUT_MS = 2000;
/** Packs tracked; beyond (not expected: packs come from verified certificates) frames are dropped. */
const MAX_PACKS = 10_000;

interface Pack {
  lastSentAt: number;
  pending: StoredFrame | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Connection number whose discovery went out. */
  discoveredOn: number;
  /** The last frame sent, for discovery after an HA restart. */
  last: SohFrame | undefined;
}

/** The URL as it may be logged: a password in it (config.ts refuses one, callers may not) is masked. */
function withoutPassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}

export class MqttPublisher {
  private readonly client: MqttClient;
  private readonly packs = new Map<string, Pack>();
  private readonly now: () => number;
  private readonly minIntervalMs: number;
  private readonly qos: 0 | 1;
  private readonly discovery: boolean;
  private readonly version: string;
  private connection = 0;
  private inflight = 0;
  private published = 0;
  private discoveries = 0;
  private coalesced = 0;
  private readonly dropped: Record<string, number> = {};
  private lastError: string | undefined;
  private closed = false;

  /** Starts connecting in the background and returns at once; never throws for an unreachable broker. */
  constructor(private readonly o: MqttPublisherOptions) {
    this.now = o.now ?? Date.now;
    this.minIntervalMs = o.minIntervalMs ?? 5000;
    this.qos = o.qos ?? 0;
    this.discovery = o.discovery ?? true;
    this.version = o.version ?? '0.0.0';
    const opts: IClientOptions = {
      clientId: o.clientId ?? `packchain-${o.gateway}`,
      clean: true,
      reconnectPeriod: o.reconnectPeriodMs ?? 5000,
      connectTimeout: o.connectTimeoutMs ?? 10_000,
      queueQoSZero: false,
      resubscribe: true,
      will: { topic: availabilityTopic(o), payload: Buffer.from(OFFLINE), qos: 1, retain: true },
      ...(o.username == null ? {} : { username: o.username }),
      ...(o.password == null ? {} : { password: o.password }),
    };
    this.client = connect(o.url, opts);
    const where = withoutPassword(o.url);
    this.client.on('connect', () => {
      this.connection++;
      this.lastError = undefined;
      o.logger?.info({ url: where }, 'gateway: mqtt: connected');
      this.send(availabilityTopic(o), ONLINE, true, 1);
      if (this.discovery) {
        this.client.subscribe(haStatusTopic(o), { qos: 0 }, (e) => {
          if (e) this.noteError(e);
        });
        this.sendGatewayDiscovery();
      }
    });
    this.client.on('message', (topic, payload) => {
      if (topic === haStatusTopic(o) && payload.toString() === ONLINE) this.rediscover();
    });
    this.client.on('offline', () => {
      o.logger?.warn({ url: where }, 'gateway: mqtt: broker unreachable; telemetry dropped until it is back');
    });
    this.client.on('error', (e) => {
      this.noteError(e);
    });
  }

  /** Hands over stored frames (never throws, never waits). */
  offer(frames: readonly StoredFrame[]): void {
    for (const f of frames) this.offerOne(f);
  }

  status(): MqttSnapshot {
    return {
      enabled: true,
      connected: this.client.connected,
      published: this.published,
      discoveries: this.discoveries,
      dropped: { ...this.dropped },
      coalesced: this.coalesced,
      packs: this.packs.size,
      ...(this.lastError === undefined ? {} : { lastError: this.lastError }),
    };
  }

  /** Publishes "offline" if connected, then disconnects. Pending state messages are dropped. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.packs.values()) clearTimeout(p.timer);
    if (this.client.connected) {
      // A broker that stops answering must not hold up the gateway's shutdown.
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, CLOSE_TIMEOUT_MS);
        this.client.publish(availabilityTopic(this.o), OFFLINE, { qos: 1, retain: true }, () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    await this.client.endAsync(!this.client.connected);
  }

  private drop(reason: string, n = 1): void {
    this.dropped[reason] = (this.dropped[reason] ?? 0) + n;
  }

  private noteError(e: Error): void {
    this.lastError = e.message;
    this.o.logger?.debug({ err: e.message }, 'gateway: mqtt: client error');
  }

  private offerOne(f: StoredFrame): void {
    if (this.closed) return;
    let p = this.packs.get(f.serial);
    if (p === undefined) {
      if (this.packs.size >= MAX_PACKS) {
        this.drop('packs');
        return;
      }
      p = { lastSentAt: -Infinity, pending: undefined, timer: undefined, discoveredOn: 0, last: undefined };
      this.packs.set(f.serial, p);
    }
    if (p.pending !== undefined) this.coalesced++;
    p.pending = f;
    if (p.timer !== undefined) return;
    const wait = p.lastSentAt + this.minIntervalMs - this.now();
    if (wait <= 0) {
      this.flush(p);
      return;
    }
    const pack = p;
    p.timer = setTimeout(() => {
      pack.timer = undefined;
      this.flush(pack);
    }, wait);
    p.timer.unref();
  }

  private flush(p: Pack): void {
    const f = p.pending;
    p.pending = undefined;
    if (f === undefined || this.closed) return;
    p.lastSentAt = this.now();
    if (!this.client.connected) {
      this.drop('offline');
      return;
    }
    let frame: SohFrame;
    try {
      frame = decodeFrame(parseSign1(f.cose).payload);
    } catch {
      this.drop('undecodable'); // not expected: the pipeline stored only verified frames
      return;
    }
    if (this.discovery && p.discoveredOn !== this.connection) {
      for (const m of packDiscovery(this.o, frame, this.version)) this.send(m.topic, JSON.stringify(m.payload), true, 1, true);
      p.discoveredOn = this.connection;
    }
    p.last = frame;
    if (this.send(stateTopic(this.o, frame.serial), JSON.stringify(stateMessage(frame, f.receivedAt, f.source)), true, this.qos)) this.published++;
  }

  private sendGatewayDiscovery(): void {
    const m = gatewayDiscovery(this.o, this.version);
    this.send(m.topic, JSON.stringify(m.payload), true, 1, true);
  }

  /** Home Assistant restarted: send every discovery config again. */
  private rediscover(): void {
    this.sendGatewayDiscovery();
    for (const p of this.packs.values()) {
      if (p.last === undefined) continue;
      for (const m of packDiscovery(this.o, p.last, this.version)) this.send(m.topic, JSON.stringify(m.payload), true, 1, true);
      p.discoveredOn = this.connection;
    }
  }

  /** One publish, or a counted drop when offline or behind. True when handed to the client. */
  private send(topic: string, payload: string, retain: boolean, qos: 0 | 1, isDiscovery = false): boolean {
    if (!this.client.connected) {
      this.drop('offline');
      return false;
    }
    if (this.inflight >= MAX_PENDING) {
      this.drop('backlog');
      return false;
    }
    this.inflight++;
    if (isDiscovery) this.discoveries++;
    this.client.publish(topic, payload, { qos, retain }, (e) => {
      this.inflight--;
      if (e) {
        this.drop('error');
        this.noteError(e);
      }
    });
    return true;
  }
}
