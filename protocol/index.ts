/**
 * protocol: the wire formats every part of packchain speaks (docs/protocol.md). Pure: no I/O and no
 * imports of ours. hw-sim, provisioning, gateway and ledger import protocol only through this file.
 */
export { ProtocolError, isProtocolError, type ProtocolErrorCode } from './errors.js';
export {
  bytesEqual,
  concatBytes,
  crc32,
  fromBase64,
  fromBase64Url,
  fromHex,
  fromUtf8,
  toBase64,
  toBase64Url,
  toHex,
  utf8,
} from './bytes.js';
export {
  fromKeyObject,
  importPublicKey,
  importSpki,
  sha256,
  spkiOf,
  verifySignature,
  type PublicKey,
  type SignatureAlg,
} from './crypto.js';
