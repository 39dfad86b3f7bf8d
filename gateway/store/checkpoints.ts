/**
 * The checkpoints the gateway signs over its log (docs/protocol.md §8, C2SP tlog-checkpoint).
 * `checkpoint` holds the latest signed note, replaced atomically (temp, fsync, rename, fsync dir):
 * on open it is what the recovered tree must still match, because a gateway never signs two
 * inconsistent checkpoints. Every checkpoint is also appended to the history file of the segment
 * holding its last entry (`k.checkpoints`, CRC'd records), so history is pruned together with the
 * entries it covers instead of growing one file per checkpoint. The policy helper says when the
 * next checkpoint is due: every N entries or T milliseconds, and never when the log did not grow.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { parseCheckpoint, parseNote } from '../../protocol/index.js';
import { GatewayError } from '../errors.js';
import { FILE_MODE, FILES, checkpointRecord, parseCheckpointRecords, segmentFileName } from './format.js';
import { readIfExists, writeAtomic } from './files.js';

/** A checkpoint as the store keeps it: the signed note and the tree it covers. */
export interface StoredCheckpoint {
  readonly size: number;
  readonly rootHash: Uint8Array;
  /** The signed note, byte for byte as written. */
  readonly note: string;
}

/** When to sign: after `everyEntries` new entries or `everyMs` since the last one, if the log grew. */
export interface CheckpointPolicy {
  readonly everyEntries: number;
  readonly everyMs: number;
}

export const DEFAULT_CHECKPOINT_POLICY: CheckpointPolicy = { everyEntries: 1000, everyMs: 10_000 };

/**
 * True when a checkpoint is due under `policy`: the durable size grew past the last checkpoint and
 * either `everyEntries` entries were added or `everyMs` passed since `lastAt` (ms, the caller's clock).
 */
export function checkpointDue(policy: CheckpointPolicy, size: number, last: { size: number; at: number } | undefined, now: number): boolean {
  if (last === undefined) return size > 0;
  if (size <= last.size) return false;
  return size - last.size >= policy.everyEntries || now - last.at >= policy.everyMs;
}

/** Parses a stored note; STORE_CORRUPT when it is not a checkpoint of `origin`. */
export function parseStored(note: string, origin: string, where: string): StoredCheckpoint {
  let body;
  try {
    body = parseCheckpoint(parseNote(note).text);
  } catch (e) {
    throw new GatewayError('STORE_CORRUPT', `gateway: store: ${where}: not a signed checkpoint`, { cause: e });
  }
  if (body.origin !== origin) throw new GatewayError('STORE_CORRUPT', `gateway: store: ${where}: origin ${JSON.stringify(body.origin)}, expected ${JSON.stringify(origin)}`);
  return { size: body.size, rootHash: body.rootHash, note };
}

/** Reads the latest checkpoint file; undefined when none was ever signed. Throws STORE_CORRUPT. */
export async function readLatest(dir: string, origin: string): Promise<StoredCheckpoint | undefined> {
  const bytes = await readIfExists(join(dir, FILES.checkpoint));
  if (bytes === undefined) return undefined;
  return parseStored(Buffer.from(bytes).toString('utf8'), origin, FILES.checkpoint);
}

/** Appends checkpoints to the segment history files and replaces the latest one. Single writer. */
export class CheckpointWriter {
  #segment = -1;
  #handle: FileHandle | undefined;
  #end = 0;

  constructor(private readonly dir: string) {}

  /** Makes `c` (of segment k's history) durable, then the latest; returns the bytes added. Throws the file system's error. */
  async write(c: StoredCheckpoint, k: number): Promise<number> {
    let written = 0;
    if (c.size > 0) {
      if (k !== this.#segment) await this.#openSegment(k);
      const rec = checkpointRecord(c.size, c.note);
      const h = this.#handle as FileHandle;
      await h.write(rec, 0, rec.length, this.#end);
      await h.datasync();
      this.#end += rec.length;
      written += rec.length;
    }
    return written + (await writeAtomic(join(this.dir, FILES.checkpoint), c.note));
  }

  async #openSegment(k: number): Promise<void> {
    await this.close();
    const path = join(this.dir, segmentFileName(k, 'checkpoints'));
    const h = await open(path, constants.O_RDWR | constants.O_CREAT, FILE_MODE);
    try {
      // Cut a torn record left by a crash before appending after it.
      const { validBytes } = parseCheckpointRecords(new Uint8Array(await h.readFile()));
      if ((await h.stat()).size !== validBytes) await h.truncate(validBytes);
    } catch (e) {
      await h.close();
      throw e;
    }
    this.#handle = h;
    this.#segment = k;
    this.#end = (await h.stat()).size;
  }

  /** Forgets segment k's handle before its files are pruned. */
  async forget(k: number): Promise<void> {
    if (k === this.#segment) await this.close();
  }

  async close(): Promise<void> {
    const h = this.#handle;
    this.#handle = undefined;
    this.#segment = -1;
    await h?.close();
  }
}

/** The checkpoints recorded in segment k's history file, oldest first (a torn tail is skipped). */
export async function readSegmentCheckpoints(dir: string, k: number, origin: string): Promise<StoredCheckpoint[]> {
  const path = join(dir, segmentFileName(k, 'checkpoints'));
  const bytes = await readIfExists(path);
  if (!bytes) return [];
  return parseCheckpointRecords(bytes).records.map((r) => {
    const c = parseStored(r.note, origin, path);
    if (c.size !== r.size) throw new GatewayError('STORE_CORRUPT', `gateway: store: ${path}: record size ${r.size} differs from its note's ${c.size}`);
    return c;
  });
}
