/**
 * The sync client's uploads on the wire (issue 7 item 5, "bounded in-flight"), in one process: the
 * gateway's real SyncClient and LogStore against the real ledger (embedded storage) behind its real
 * HTTP server. A backlog goes up in batches with up to `maxInFlightBatches` uploads at once, never
 * more; the ledger takes them in order of their first index, stores every leaf once and cosigns the
 * checkpoint. Concurrency is observed at the ledger's service interface (a wrapper counting the
 * uploads it is running, each held 40 ms so that overlap shows whatever the machine's speed).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { bytesEqual, createNoteSigner, formatVerifierKey, gatewayOrigin, verifierOf } from '../protocol/index.js';
import { LogStore, SyncClient } from '../gateway/index.js';
import { Ledger } from '../ledger/ledger.js';
import { createLedgerServer } from '../ledger/http/server.js';
import type { LedgerService } from '../ledger/http/service.js';
import { embeddedStorage, TestFactory, testWitness, type TestPack } from '../ledger/ledger-testkit.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Run {
  /** Most uploads the ledger was running at once. */
  readonly maxAtOnce: number;
  readonly uploads: number;
  readonly ledgerSize: number;
  readonly stored: number;
  readonly duplicates: number;
  readonly cosignedSize: number | undefined;
}

/** Syncs a 60-leaf log (3 packs) in batches of 6 with `inFlight` uploads allowed on the wire. */
async function syncBacklog(inFlight: number): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'sync-in-flight-'));
  cleanups.push(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const f = await TestFactory.create();
  const packs: TestPack[] = [await f.pack('PK-2026-0501'), await f.pack('PK-2026-0502', 'ES256'), await f.pack('PK-2026-0503')];
  const storage = embeddedStorage();
  const ledger = await Ledger.open({ storage: storage.options, witness: testWitness(), trust: await f.trust(), verifyThreads: 1 });
  cleanups.push(async () => {
    await ledger.close();
    await storage.drop();
  });
  const signer = createNoteSigner(gatewayOrigin('in-flight'), new Uint8Array(32).fill(7));
  const gw = await ledger.enrollGateway(formatVerifierKey(signer.name, signer.publicKey, 'ed25519'));

  let running = 0;
  let maxAtOnce = 0;
  let uploads = 0;
  const observed: LedgerService = new Proxy(ledger, {
    get(target, key, receiver): unknown {
      if (key === 'upload') {
        return async (...args: Parameters<Ledger['upload']>) => {
          running++;
          uploads++;
          maxAtOnce = Math.max(maxAtOnce, running);
          try {
            await new Promise((r) => setTimeout(r, 40));
            return await target.upload(...args);
          } finally {
            running--;
          }
        };
      }
      const v: unknown = Reflect.get(target, key, receiver);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const app = await createLedgerServer({ ledger: observed, logger: pino({ level: 'silent' }), trustBundle: () => '', webPage: false });
  await app.listen({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => app.close());
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  const store = await LogStore.open({ dir: join(dir, 'log'), origin: signer.name });
  cleanups.push(() => store.close());
  const now = Date.now();
  await store.append(
    Array.from({ length: 60 }, (_, i) => {
      const pack = packs[i % 3] as TestPack;
      const counter = Math.floor(i / 3);
      return { serial: pack.serial, counter, leaf: { receivedAt: now, source: 'serial:/dev/ttyUSB0', certSha256: pack.certSha256, frame: pack.frame(counter) } };
    }),
  );
  await store.checkpoint(signer);
  const client = new SyncClient({
    url,
    store,
    chains: (sha) => packs.find((p) => bytesEqual(p.certSha256, sha))?.chain,
    signer,
    witness: verifierOf(testWitness()),
    dataDir: join(dir, 'data'),
    intervalMs: 60_000,
    timeoutMs: 10_000,
    maxBatchEntries: 6,
    maxInFlightBatches: inFlight,
  });
  await client.start();
  cleanups.push(() => client.stop());
  const deadline = Date.now() + 30_000;
  while (store.syncedSize < 60 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const state = await ledger.state(gw);
  const stats = ledger.stats();
  expect(client.status().lastErrorCode).toBeUndefined();
  return { maxAtOnce, uploads, ledgerSize: state.size, stored: stats.entriesStored, duplicates: stats.duplicates, cosignedSize: client.status().cosignedSize };
}

describe('sync client uploads on the wire at once (real ledger over HTTP)', () => {
  it('maxInFlightBatches 3 › three uploads at once, never more; every leaf stored once and the checkpoint cosigned', async () => {
    const r = await syncBacklog(3);
    expect(r).toEqual({ maxAtOnce: 3, uploads: 10, ledgerSize: 60, stored: 60, duplicates: 0, cosignedSize: 60 });
  });

  it('maxInFlightBatches 1 › one upload at a time', async () => {
    const r = await syncBacklog(1);
    expect(r).toEqual({ maxAtOnce: 1, uploads: 10, ledgerSize: 60, stored: 60, duplicates: 0, cosignedSize: 60 });
  });
});
