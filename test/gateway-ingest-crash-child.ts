/**
 * Child process of test/gateway-ingest-crash.test.ts: a gateway in one process — LogStore on disk,
 * the ingest pipeline with one verification worker, the SerialTransport on the fleet's ptys. Every
 * ack the pipeline sends is first appended to `ackLog` with a synchronous write (so what the parent
 * reads after a kill -9 is a superset of what reached a device). SIGTERM closes everything cleanly
 * and writes the pipeline status to `statusPath`. Run: node --import tsx <this file> '<json config>'.
 */
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { decodeTrustBundle, gatewayOrigin, TrustStore, type Message } from '../protocol/index.js';
import { type ChannelEvents, type DeviceChannel, IngestPipeline, logPort, LogStore, SerialTransport } from '../gateway/index.js';

interface Config {
  logDir: string;
  stateDir: string;
  ports: string[];
  bundlePath: string;
  ackLog: string;
  statusPath: string;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as Config;
const store = await LogStore.open({ dir: cfg.logDir, origin: gatewayOrigin('crash-test') });
const trust = await TrustStore.create(decodeTrustBundle(readFileSync(cfg.bundlePath, 'utf8')));
const pipeline = await IngestPipeline.open({ log: logPort(store), trust, stateDir: cfg.stateDir, verify: { workers: 1 }, snapshotEvery: 40 });
const ackFd = openSync(cfg.ackLog, 'a');

const wrapped = new WeakMap<DeviceChannel, DeviceChannel>();
function wrap(ch: DeviceChannel): DeviceChannel {
  let w = wrapped.get(ch);
  if (w === undefined) {
    w = {
      id: ch.id,
      source: ch.source,
      kind: ch.kind,
      openedAt: ch.openedAt,
      get isOpen() {
        return ch.isOpen;
      },
      send(msg: Message): Promise<void> {
        if (msg.type === 'ack') for (const [lo, hi] of msg.ranges) writeSync(ackFd, `${ch.id} ${lo} ${hi}\n`);
        return ch.send(msg);
      },
      close: (reason?: string) => ch.close(reason),
    };
    wrapped.set(ch, w);
  }
  return w;
}

const events: ChannelEvents = {
  open: (ch) => {
    pipeline.events.open(wrap(ch));
  },
  message: (ch, msg) => {
    pipeline.events.message(wrap(ch), msg);
  },
  reject: (ch, code, detail, raw) => {
    pipeline.events.reject(wrap(ch), code, detail, raw);
  },
  close: (ch, reason) => {
    pipeline.events.close(wrap(ch), reason);
  },
};

const transport = new SerialTransport({ ports: cfg.ports, pollMs: 200 });
await transport.start(events);
process.stdout.write(`ready ${JSON.stringify(pipeline.recovery)}\n`);

process.on('SIGTERM', () => {
  void (async () => {
    await transport.stop();
    await pipeline.close();
    writeFileSync(cfg.statusPath, JSON.stringify(pipeline.status()));
    closeSync(ackFd);
    await store.close();
    process.exit(0);
  })();
});
