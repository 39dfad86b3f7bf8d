/**
 * The latest checkpoint the ledger cosigned, kept in `<dataDir>/sync/cosigned-checkpoint`: the
 * gateway's signed note with the ledger's witness cosignature line added (c2sp.org/tlog-cosignature).
 * `gateway prove` puts it in a proof bundle when it covers the entry, so a third party can check
 * that the ledger witnessed the tree (protocol verifyProofBundle with the ledger as witness). It is
 * replaced atomically (temp 0600, fsync, rename, directory fsync): after a power cut the file holds
 * the old note or the new, never a mix. On read the file is hostile: its size is capped and it must
 * be a checkpoint of this gateway's origin signed by this gateway's key.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_NOTE_SIZE, openCheckpoint, type NoteVerifier } from '../../protocol/index.js';
import { GatewayError } from '../errors.js';
import { writeAtomic } from '../store/files.js';

export const COSIGNED_FILE = 'cosigned-checkpoint';

/** A cosigned checkpoint as kept: its tree size and the note text. */
export interface CosignedCheckpoint {
  readonly size: number;
  readonly note: string;
}

/** The sync directory of a data directory. */
export function syncDir(dataDir: string): string {
  return join(dataDir, 'sync');
}

/** Writes `note` (tree `size`) as the latest cosigned checkpoint. Throws STORE_IO. */
export async function writeCosigned(dataDir: string, cp: CosignedCheckpoint): Promise<void> {
  const dir = syncDir(dataDir);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeAtomic(join(dir, COSIGNED_FILE), cp.note);
  } catch (e) {
    throw new GatewayError('STORE_IO', `gateway: sync: cannot write ${join(dir, COSIGNED_FILE)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
}

/**
 * The kept cosigned checkpoint, checked against the gateway's verifier key (and the witness keys
 * given, which must then have cosigned); undefined when there is none yet. Throws STORE_CORRUPT for
 * a file that is not such a checkpoint, STORE_IO when it cannot be read.
 */
export async function readCosigned(dataDir: string, origin: string, gateway: NoteVerifier, witnesses: readonly NoteVerifier[] = []): Promise<CosignedCheckpoint | undefined> {
  const path = join(syncDir(dataDir), COSIGNED_FILE);
  let text: string;
  try {
    const b = await readFile(path);
    if (b.length > MAX_NOTE_SIZE) throw new GatewayError('STORE_CORRUPT', `gateway: sync: ${path}: ${b.length} bytes; expected one signed note of at most ${MAX_NOTE_SIZE}`);
    text = b.toString('utf8');
  } catch (e) {
    if (e instanceof GatewayError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new GatewayError('STORE_IO', `gateway: sync: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  try {
    const cp = openCheckpoint(text, { origin, verifiers: [gateway], witnesses, requiredWitnesses: witnesses.length > 0 ? 1 : 0 });
    return { size: cp.size, note: text };
  } catch (e) {
    throw new GatewayError('STORE_CORRUPT', `gateway: sync: ${path}: not a checkpoint of ${origin} signed by this gateway${witnesses.length > 0 ? ' and cosigned by the ledger' : ''}: ${(e as Error).message}`, { cause: e });
  }
}
