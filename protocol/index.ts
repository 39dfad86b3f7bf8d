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
export { decodeCbor, encodeCbor, CborTag, type CborMap, type CborValue, type CborKey } from './cbor.js';
export { decodeFrame, encodeFrame, FRAME_MAX_BYTES } from './frame.js';
export {
  ALARM_BITS,
  ALARM_MASK_V1,
  FRAME_FIELD_BY_NAME,
  FRAME_FIELDS,
  FRAME_VERSION,
  type FrameField,
  type FrameFieldKind,
  type FrameFieldName,
  type SohFrame,
} from './frame-fields.js';
export {
  buildSign1,
  COSE_ALG,
  COSE_KID_BYTES,
  COSE_MAX_BYTES,
  COSE_SIGN1_TAG,
  coseKid,
  parseSign1,
  parseSign1Generic,
  sigStructure,
  type GenericSign1Options,
  type ParsedSign1,
  type ParsedSign1Generic,
  type Sign1Input,
  type Sign1Key,
  type VerifiedSign1,
} from './cose-sign1.js';
export { verifySign1, verifySign1Generic } from './cose.js';
export { signSign1, verifySign1GenericPortable, verifySign1Portable } from './cose-portable.js';
export {
  importPublicKeyPortable,
  publicKeyFromSecretPortable,
  sha256Portable,
  signPortable,
  spkiPortable,
  verifySignaturePortable,
  type PortablePublicKey,
} from './crypto-portable.js';
export {
  ackMessages,
  ackRanges,
  decodeMessage,
  encodeMessage,
  MESSAGE_LIMITS,
  popMessage,
  type AckMessage,
  type AckRange,
  type DecodeEvent,
  type DeviceKeyAlg,
  type ErrorNoticeMessage,
  type FrameMessage,
  type HelloInfo,
  type HelloMessage,
  type Message,
  type MessageLetter,
  type RequestMessage,
  type ResponseMessage,
} from './messages.js';
export {
  errorResponse,
  isRequestOp,
  okResponse,
  parseRequest,
  parseResult,
  requestMessage,
  REQUEST_OPS,
  RESPONSE_STATUS,
  type OpResult,
  type RequestCall,
  type RequestOp,
} from './message-ops.js';
export { encodeLine, LineDecoder, MAX_LINE_BYTES, parseLine, type LineDecoderStats } from './serial.js';
export {
  BLE_GATT,
  BLE_LIMITS,
  chunkBytes,
  ChunkJoiner,
  chunkMessage,
  decodeBleMessage,
  decodeDeviceInfo,
  encodeBleMessage,
  encodeDeviceInfo,
  Reassembler,
  type DeviceInfo,
  type JoinEvent,
  type ReassemblerOptions,
  type ReassemblerStats,
} from './ble.js';
export { diag as cborDiagnostic, eventLabels, messageJson } from './wire-testkit.js';
export {
  HASH_SIZE,
  MAX_STORED_TREE_SIZE,
  MemoryHashStore,
  emptyRoot,
  leafHash,
  nodeHash,
  proveRecord,
  proveTree,
  storedHashCount,
  storedHashIndex,
  storedHashes,
  storedHashesForLeafHash,
  treeHash,
  type HashReader,
} from './merkle.js';
export { MAX_PROOF_LENGTH, rootFromInclusionProof, verifyConsistency, verifyInclusion } from './merkle-verify.js';
export { consistencyProofOfLeaves, inclusionProofOfLeaves, rootOfLeaves } from './merkle-reference.js';
export {
  MAX_KEY_STRING,
  SIG_TYPE_COSIGNATURE_V1,
  SIG_TYPE_ED25519,
  cosignatureMessage,
  cosignatureTimestamp,
  createNoteVerifier,
  formatVerifierKey,
  isValidKeyName,
  noteKeyHash,
  parseVerifierKey,
  type NoteKeyKind,
  type NoteSigner,
  type NoteVerifier,
} from './note-keys.js';
export {
  createCosigner,
  createNoteSigner,
  formatSignerKey,
  parseSignerKey,
  signerFromKey,
  verifierOf,
  type Ed25519NoteSigner,
  type SignerKey,
} from './note-signer.js';
export {
  MAX_NOTE_SIGNATURES,
  MAX_NOTE_SIZE,
  addSignatures,
  openNote,
  parseNote,
  signNote,
  type NoteSignature,
  type NoteSignatureLine,
  type OpenedNote,
  type ParsedNote,
} from './note.js';
export {
  GATEWAY_ORIGIN_PREFIX,
  checkConsistentCheckpoints,
  formatCheckpoint,
  gatewayOrigin,
  openCheckpoint,
  parseCheckpoint,
  signCheckpoint,
  type Checkpoint,
  type CheckpointInput,
  type OpenCheckpointOptions,
  type OpenedCheckpoint,
  type WitnessCosignature,
} from './checkpoint.js';
export { decodeLeaf, encodeLeaf, LEAF_VERSION, MAX_LEAF_BYTES, type LogLeaf } from './leaf.js';
