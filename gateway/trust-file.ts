/**
 * Loading the trust bundle file (docs/protocol.md §3.5, written by `packchain provision export`)
 * into a protocol TrustStore, for the daemon (at start and on SIGHUP) and for the offline commands
 * (`gateway verify`, `gateway verify-proof --trust`). Also the gateway key's public half for the
 * commands that only check signatures: a verifier key given as text or as a file holding it.
 * The bundle is hostile input: its size is capped before it is read, and every failure becomes one
 * GatewayError naming the file and what was expected.
 */
import { readFile, stat } from 'node:fs/promises';
import { decodeTrustBundle, isProtocolError, MAX_TRUST_BUNDLE_CHARS, parseVerifierKey, TrustStore, type NoteVerifier } from '../protocol/index.js';
import { GatewayError } from './errors.js';

/** Reads and builds the trust store in `path`. Throws TRUST_LOAD naming the file and the protocol code. */
export async function loadTrustBundle(path: string): Promise<TrustStore> {
  let text: string;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_TRUST_BUNDLE_CHARS * 4) throw new Error(`${st.size} bytes, more than a trust bundle may have`);
    text = await readFile(path, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new GatewayError('TRUST_LOAD', `gateway: trust bundle ${path}: cannot read it (${why}); expected the file \`packchain provision export\` writes`, { cause: e });
  }
  try {
    return await TrustStore.create(decodeTrustBundle(text));
  } catch (e) {
    if (!isProtocolError(e)) throw e;
    throw new GatewayError('TRUST_LOAD', `gateway: trust bundle ${path}: ${e.code}: ${e.message}`, { cause: e });
  }
}

/**
 * A note verifier from a verifier key string (`<name>+<hex id>+<base64>`), or from a file whose
 * first line is one. Throws USAGE when neither parses.
 */
export async function loadVerifierKey(textOrFile: string): Promise<NoteVerifier> {
  const parse = (s: string): NoteVerifier | undefined => {
    try {
      return parseVerifierKey(s.trim());
    } catch {
      return undefined;
    }
  };
  const direct = parse(textOrFile);
  if (direct !== undefined) return direct;
  let line: string;
  try {
    line = (await readFile(textOrFile, 'utf8')).split(/\r?\n/)[0] ?? '';
  } catch (e) {
    throw new GatewayError('USAGE', `gateway: --gateway-key: ${JSON.stringify(textOrFile)} is neither a verifier key (<name>+<key ID>+<base64>) nor a readable file`, { cause: e });
  }
  const fromFile = parse(line);
  if (fromFile === undefined) throw new GatewayError('USAGE', `gateway: --gateway-key: ${textOrFile}: expected a verifier key line <name>+<key ID>+<base64> (what \`gateway init\` prints)`);
  return fromFile;
}
