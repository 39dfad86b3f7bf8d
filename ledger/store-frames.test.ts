/**
 * storeFrames on the machine's PostgreSQL, the race its fast path must survive: frames the range
 * scan found not held go in with a plain INSERT; when another transaction inserts one of them
 * between that scan and the INSERT, the INSERT waits for it, fails with a unique violation once it
 * commits, and the frames are written again with ON CONFLICT — the frame stays once, the second
 * leaf adds a sighting, and the upload's transaction goes on.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgres, type Db } from './db/driver.js';
import { migrate } from './db/migrations.js';
import { FIELD_COUNT } from './verify-frame.js';
import type { JudgedLeaf } from './judge.js';
import { storeFrames } from './store-frames.js';
import { postgresStorage, T0, type TestStorage } from './ledger-testkit.js';
import type { GatewayRecord } from './types.js';

/** A verified leaf of `serial` / `counter` whose payload hashes to 32 × `fill`. */
function leaf(serial: string, counter: number, fill: number): JudgedLeaf {
  const values = new Float64Array(FIELD_COUNT);
  values[0] = counter;
  const reply = { id: 0, ok: Uint8Array.of(1), values, hashes: new Uint8Array(32).fill(fill), errors: [] };
  const cert = new Uint8Array(32).fill(9);
  return {
    data: Uint8Array.of(0), leafHash: new Uint8Array(32), receivedAt: T0, source: 'serial:/dev/ttyUSB0', certSha256: cert, certHex: '09'.repeat(32),
    serial, counter, verdict: null, message: null, reply, at: 0,
  };
}

describe('storeFrames against a concurrent insert (postgres)', () => {
  let storage: TestStorage;
  let db: Db;
  let url: string;
  let gw: GatewayRecord;

  beforeAll(async () => {
    storage = await postgresStorage(2);
    url = storage.options.kind === 'postgres' ? storage.options.url : '';
    db = await openPostgres(url, 2);
    await migrate(db);
    const rows = await db.query<{ id: number }>("INSERT INTO gateways (origin, vkey, enrolled_at, root) VALUES ('packchain.gateway/race', 'k', 0, '\\x00') RETURNING id");
    gw = { id: rows[0]?.id ?? 0, origin: 'packchain.gateway/race', vkey: 'k', label: '', enrolledAt: 0, disabled: false };
  });

  afterAll(async () => {
    await db.close();
    await storage.drop();
  });

  it('a frame inserted after the range scan › unique violation, written again with ON CONFLICT: once, two sightings', async () => {
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(
        `INSERT INTO frames (serial, counter, frame_sha256, gateway_id, idx, received_at, source, cert_sha256, device_time,
           soc, soh, voltage, current, cell_min, cell_max, temp_min, temp_max, cycles, alarms)
         VALUES ('PK-RACE', 5, $1, $2, 0, $3, 'serial:/dev/ttyUSB0', $1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)`,
        [new Uint8Array(32).fill(7), gw.id, T0],
      );
      // PK-RACE 5 is not visible to the upload's scan (uncommitted), so its plain INSERT waits on it.
      const upload = db.transaction((tx) => storeFrames(tx, gw, 10, [leaf('PK-RACE', 4, 1), leaf('PK-RACE', 5, 7), leaf('PK-RACE', 6, 2)], true));
      for (let i = 0; i < 500; i++) {
        const waiting = await other.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
        if (waiting.rows[0]?.n === 1) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      expect((await other.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).rows[0]?.n).toBe(1);
      await other.query('COMMIT');
      const r = await upload;
      expect(r).toMatchObject({ stored: 2, seenAgain: 1, equivocations: [] });
      const rows = await db.query<{ counter: number; sightings: number; idx: number }>("SELECT counter, sightings, idx FROM frames WHERE serial = 'PK-RACE' ORDER BY counter");
      expect(rows).toEqual([{ counter: 4, sightings: 1, idx: 10 }, { counter: 5, sightings: 2, idx: 0 }, { counter: 6, sightings: 1, idx: 12 }]);
    } finally {
      await other.end();
    }
  });
});
