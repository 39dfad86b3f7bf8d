/**
 * Textual forms of identity artefacts (docs/protocol.md §3.4, §3.5): PEM encapsulation (RFC 7468)
 * of certificates and CRLs, and the trust bundle file `packchain-trust/v1` that
 * `packchain provision export` writes and gateways and the ledger load. Both come from files and
 * are hostile: inputs are size-capped before parsing, base64 is decoded strictly, and every
 * failure is a ProtocolError. Only structure is checked here; TrustStore.create checks contents.
 */
import { ProtocolError, type IdentityErrorCode } from './errors.js';
import { fromBase64, toBase64 } from './bytes.js';

/** PEM labels packchain writes. OpenSSL 3.0 rejects "BEGIN CRL": CRLs are "X509 CRL" (RFC 7468 §6). */
export type PemLabel = 'CERTIFICATE' | 'X509 CRL';

export interface PemBlock {
  readonly label: string;
  readonly der: Uint8Array;
}

/** Largest PEM text fromPem reads (a 4 MiB CRL is ~5.6 MiB of base64). */
export const MAX_PEM_CHARS = 8 * 1024 * 1024;
/** Most PEM blocks fromPem returns. */
export const MAX_PEM_BLOCKS = 4096;

/** RFC 7468 §3 strict encoding: 64-character base64 lines, LF line ends, final newline. */
export function toPem(der: Uint8Array, label: PemLabel): string {
  const b64 = toBase64(der);
  let body = '';
  for (let i = 0; i < b64.length; i += 64) body += `${b64.slice(i, i + 64)}\n`;
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}

const BEGIN = /^-----BEGIN ([A-Z0-9]+(?: [A-Z0-9]+)*)-----$/;
const BASE64_LINE = /^[A-Za-z0-9+/=]+$/;

/**
 * Decodes every PEM block in `text` (RFC 7468 §2: text outside blocks is ignored). Lines may end
 * in LF or CRLF and may carry trailing spaces; body lines may have any length but only base64
 * characters, and the joined body must be canonical padded base64. Encapsulated headers
 * (RFC 1421 "Proc-Type:") are refused. Throws `code` for a block that is not closed by the
 * matching END line, a bad body, more than MAX_PEM_BLOCKS blocks or text over MAX_PEM_CHARS.
 */
export function fromPem(text: string, code: IdentityErrorCode = 'CERT_PARSE'): PemBlock[] {
  if (typeof text !== 'string') throw new ProtocolError(code, 'PEM: expected text');
  if (text.length > MAX_PEM_CHARS) throw new ProtocolError(code, `PEM: ${text.length} characters, at most ${MAX_PEM_CHARS}`);
  const out: PemBlock[] = [];
  let label: string | undefined;
  let body: string[] = [];
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = (lines[n] ?? '').replace(/[ \t\r]+$/, '');
    if (label === undefined) {
      if (!line.startsWith('-----')) continue; // explanatory text between blocks
      const m = BEGIN.exec(line);
      if (m === null) throw new ProtocolError(code, `PEM line ${n + 1}: expected "-----BEGIN <LABEL>-----"`);
      label = m[1] ?? '';
      body = [];
      continue;
    }
    if (line === `-----END ${label}-----`) {
      if (body.length === 0) throw new ProtocolError(code, `PEM block "${label}" at line ${n + 1}: empty`);
      if (out.length >= MAX_PEM_BLOCKS) throw new ProtocolError(code, `PEM: more than ${MAX_PEM_BLOCKS} blocks`);
      out.push({ label, der: fromBase64(body.join(''), code, `PEM block "${label}"`) });
      label = undefined;
      continue;
    }
    if (!BASE64_LINE.test(line)) {
      throw new ProtocolError(code, `PEM block "${label}" line ${n + 1}: expected base64 (headers and stray text are not allowed)`);
    }
    body.push(line);
  }
  if (label !== undefined) throw new ProtocolError(code, `PEM block "${label}": missing "-----END ${label}-----"`);
  return out;
}

/** The trust material a gateway or ledger verifies device chains against (DER). */
export interface TrustBundle {
  readonly roots: readonly Uint8Array[];
  readonly intermediates: readonly Uint8Array[];
  readonly crls: readonly Uint8Array[];
}

export const TRUST_BUNDLE_FORMAT = 'packchain-trust/v1';
/** Largest trust bundle text accepted, in characters. */
export const MAX_TRUST_BUNDLE_CHARS = 4 * 1024 * 1024;
/** Most entries in each of roots, intermediates and crls. */
export const MAX_TRUST_BUNDLE_LIST = 1000;

const LISTS = ['roots', 'intermediates', 'crls'] as const;
const LABELS: Record<(typeof LISTS)[number], PemLabel> = { roots: 'CERTIFICATE', intermediates: 'CERTIFICATE', crls: 'X509 CRL' };

function bad(message: string, cause?: unknown): never {
  throw new ProtocolError('TRUST_BUNDLE', `trust bundle: ${message}`, cause === undefined ? undefined : { cause });
}

/**
 * Writes the bundle as `{"format":"packchain-trust/v1","roots":[PEM…],"intermediates":[…],"crls":[…]}`
 * (two-space indented JSON, final newline). Throws TRUST_BUNDLE for a bundle decodeTrustBundle
 * would refuse (no root, a list over MAX_TRUST_BUNDLE_LIST, output over MAX_TRUST_BUNDLE_CHARS).
 */
export function encodeTrustBundle(bundle: TrustBundle): string {
  if (bundle.roots.length === 0) bad('at least one root is required');
  const doc: Record<string, unknown> = { format: TRUST_BUNDLE_FORMAT };
  for (const k of LISTS) {
    if (bundle[k].length > MAX_TRUST_BUNDLE_LIST) bad(`${k}: more than ${MAX_TRUST_BUNDLE_LIST} entries`);
    doc[k] = bundle[k].map((der) => toPem(der, LABELS[k]));
  }
  const text = `${JSON.stringify(doc, null, 2)}\n`;
  if (text.length > MAX_TRUST_BUNDLE_CHARS) bad(`encoded size ${text.length} exceeds ${MAX_TRUST_BUNDLE_CHARS} characters`);
  return text;
}

/**
 * Reads a trust bundle file. Throws TRUST_BUNDLE when the text exceeds MAX_TRUST_BUNDLE_CHARS, is
 * not JSON, is not an object with exactly the keys format/roots/intermediates/crls, names another
 * format, a list is not an array of strings or exceeds MAX_TRUST_BUNDLE_LIST, an entry is not
 * exactly one PEM block with the list's label, or there is no root. Certificate and CRL contents
 * are checked by TrustStore.create.
 */
export function decodeTrustBundle(text: string): TrustBundle {
  if (typeof text !== 'string') bad('expected text');
  if (text.length > MAX_TRUST_BUNDLE_CHARS) bad(`${text.length} characters, at most ${MAX_TRUST_BUNDLE_CHARS}`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    bad('not valid JSON', e);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) bad('expected a JSON object');
  const obj = doc as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (key !== 'format' && !(LISTS as readonly string[]).includes(key)) bad(`unknown key "${key}"`);
  }
  if (obj.format !== TRUST_BUNDLE_FORMAT) bad(`format: expected "${TRUST_BUNDLE_FORMAT}"`);
  const lists: Record<string, Uint8Array[]> = {};
  for (const k of LISTS) {
    const v = obj[k];
    if (!Array.isArray(v)) bad(`${k}: expected an array of PEM strings`);
    if (v.length > MAX_TRUST_BUNDLE_LIST) bad(`${k}: ${v.length} entries, at most ${MAX_TRUST_BUNDLE_LIST}`);
    lists[k] = v.map((item: unknown, i) => {
      if (typeof item !== 'string') bad(`${k}[${i}]: expected a PEM string`);
      const blocks = fromPem(item, 'TRUST_BUNDLE');
      const block = blocks[0];
      if (blocks.length !== 1 || block === undefined) bad(`${k}[${i}]: expected exactly one PEM block, got ${blocks.length}`);
      if (block.label !== LABELS[k]) bad(`${k}[${i}]: expected label "${LABELS[k]}", got "${block.label}"`);
      return block.der;
    });
  }
  const roots = lists.roots ?? [];
  if (roots.length === 0) bad('roots: at least one root is required');
  return { roots, intermediates: lists.intermediates ?? [], crls: lists.crls ?? [] };
}
