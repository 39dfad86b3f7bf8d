import { describe, expect, it } from 'vitest';
import { encodeCbor, type CborValue } from './cbor.js';
import { isProtocolError } from './errors.js';
import { formatVerifierKey } from './note-keys.js';
import { createNoteSigner, verifierOf } from './note-signer.js';
import {
  decodeUploadRequest,
  encodeUploadRequest,
  MAX_UPLOAD_BYTES,
  MAX_UPLOAD_ENTRIES,
  parseSyncAuthorization,
  parseSyncState,
  parseUploadResult,
  signSyncRequest,
  SYNC_AUTH_SKEW_MS,
  syncRequestMessage,
  syncStateJson,
  uploadResultJson,
  verifySyncRequest,
  type UploadRequest,
} from './sync.js';

const seed = new Uint8Array(32).fill(7);
const signer = createNoteSigner('packchain.gateway/line-3', seed);
const verifier = verifierOf(signer);
const nonce = new Uint8Array(16).fill(9);
const body = new Uint8Array([1, 2, 3]);
const now = 1_780_000_000_000;

const upload: UploadRequest = {
  origin: 'packchain.gateway/line-3',
  from: 40,
  entries: [new Uint8Array([0xa0]), new Uint8Array(300).fill(1)],
  certs: [new Uint8Array(500).fill(2)],
  checkpoint: 'packchain.gateway/line-3\n42\nAAAA\n\n— packchain.gateway/line-3 abcd\n',
  proof: [new Uint8Array(32).fill(3)],
  proofFrom: 10,
};

const code = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    return isProtocolError(e) ? e.code : 'other';
  }
  return undefined;
};

describe('upload request', () => {
  it('round-trips through CBOR, with and without a checkpoint', () => {
    expect(decodeUploadRequest(encodeUploadRequest(upload))).toEqual(upload);
    const plain = { origin: upload.origin, from: 0, entries: upload.entries, certs: [] };
    expect(decodeUploadRequest(encodeUploadRequest(plain))).toEqual(plain);
  });

  it('refuses a checkpoint without its proof and proofFrom', () => {
    expect(code(() => encodeUploadRequest({ ...upload, proof: undefined }))).toBe('SYNC_MALFORMED');
    const m = new Map<number, CborValue>([[0, 1], [1, 'o'], [2, 0], [3, []], [4, []], [5, 'cp\n']]);
    expect(code(() => decodeUploadRequest(encodeCbor(m)))).toBe('SYNC_MALFORMED');
  });

  it('when a field has the wrong type or an unknown key is present → SYNC_MALFORMED naming it', () => {
    const base = (): Map<number, CborValue> => new Map<number, CborValue>([[0, 1], [1, 'o'], [2, 0], [3, []], [4, []]]);
    const cases: [Map<number, CborValue>, RegExp][] = [
      [new Map([...base(), [2, -1]]), /from \(2\)/],
      [new Map([...base(), [3, ['x']]]), /entries \(3\)\[0\] must be bytes/],
      [new Map([...base(), [3, [new Uint8Array(0)]]]), /entries \(3\)\[0\] must be 1\.\.1024 bytes/],
      [new Map([...base(), [9, 1]]), /unknown key 9/],
      [new Map([...base(), [0, 2]]), /version/],
    ];
    for (const [m, re] of cases) expect(() => decodeUploadRequest(encodeCbor(m))).toThrow(re);
  });

  it('caps the body and the entry count before decoding them', () => {
    expect(() => decodeUploadRequest(new Uint8Array(MAX_UPLOAD_BYTES + 1))).toThrow(/exceeds/);
    const many = new Map<number, CborValue>([[0, 1], [1, 'o'], [2, 0], [3, Array.from({ length: MAX_UPLOAD_ENTRIES + 1 }, () => new Uint8Array(1))], [4, []]]);
    expect(() => decodeUploadRequest(encodeCbor(many))).toThrow(/exceeds the cap/);
  });

  it('rejects deeply nested CBOR', () => {
    const deep = new Map<number, CborValue>([[0, 1], [1, 'o'], [2, 0], [3, [[[new Uint8Array(1)]]]], [4, []]]);
    expect(code(() => decodeUploadRequest(encodeCbor(deep)))).toMatch(/^CBOR_/);
  });
});

describe('state and result JSON', () => {
  it('round-trips and checks the answer', () => {
    const state = { origin: 'o', size: 4, rootHash: new Uint8Array(32).fill(5), checkpoint: 'cp\n', staged: 6 };
    const json = JSON.parse(JSON.stringify(uploadResultJson({ state, stored: 2, duplicates: 1, rejected: 1, rejects: [{ index: 5, code: 'COSE_SIGNATURE', message: 'm' }], cosigned: null }))) as unknown;
    expect(parseUploadResult(json)).toEqual({ state, stored: 2, duplicates: 1, rejected: 1, rejects: [{ index: 5, code: 'COSE_SIGNATURE', message: 'm' }], cosigned: null });
    expect(() => parseSyncState({ ...syncStateJson(state), staged: 3 })).toThrow(/staged must be ≥/);
    expect(() => parseSyncState({ ...syncStateJson(state), rootHash: 'AAAA' })).toThrow(/32 bytes/);
  });
});

describe('request authorization', () => {
  const req = { method: 'POST', path: '/v1/gateway/upload', body };

  it('verifies a request signed by the gateway key', () => {
    const header = signSyncRequest({ ...req, timestamp: now, nonce }, signer);
    expect(header).toMatch(/^Packchain-Gateway key=packchain\.gateway\/line-3\+[0-9a-f]{8} ts=\d+ nonce=\S{22} sig=\S+$/);
    expect(() => { verifySyncRequest(parseSyncAuthorization(header), verifier, req, now + 1000); }).not.toThrow();
  });

  it('when the body, path or method differ from what was signed → SYNC_AUTH', () => {
    const auth = parseSyncAuthorization(signSyncRequest({ ...req, timestamp: now, nonce }, signer));
    expect(code(() => { verifySyncRequest(auth, verifier, { ...req, body: new Uint8Array([1, 2, 4]) }, now); })).toBe('SYNC_AUTH');
    expect(code(() => { verifySyncRequest(auth, verifier, { ...req, path: '/v1/gateway/state' }, now); })).toBe('SYNC_AUTH');
    expect(code(() => { verifySyncRequest(auth, verifier, { ...req, method: 'GET' }, now); })).toBe('SYNC_AUTH');
  });

  it('when the timestamp is outside the skew window → SYNC_AUTH naming the clock', () => {
    const auth = parseSyncAuthorization(signSyncRequest({ ...req, timestamp: now, nonce }, signer));
    expect(() => { verifySyncRequest(auth, verifier, req, now + SYNC_AUTH_SKEW_MS + 1); }).toThrow(/from the ledger's clock/);
  });

  it('when another key signed → SYNC_AUTH', () => {
    const other = createNoteSigner('packchain.gateway/line-3', new Uint8Array(32).fill(8));
    const auth = parseSyncAuthorization(signSyncRequest({ ...req, timestamp: now, nonce }, other));
    expect(code(() => { verifySyncRequest(auth, verifier, req, now); })).toBe('SYNC_AUTH');
  });

  it('parses only the exact header form', () => {
    const good = signSyncRequest({ ...req, timestamp: now, nonce }, signer);
    for (const bad of [undefined, '', 'Bearer x', good.replace(' ts=', ' tz='), `${good} extra=1`, good.replace(/nonce=\S+/, 'nonce=AAAA'), good.replace(/sig=\S+/, 'sig=AAAA'), good.replace(/\+[0-9a-f]{8}/, '+zz')]) {
      expect(code(() => parseSyncAuthorization(bad))).toBe('SYNC_AUTH');
    }
  });
});

describe('docs/protocol.md §10.4 worked example', () => {
  it('reproduces the documented body, signed message and header', () => {
    const parts = { method: 'POST', path: '/v1/gateway/upload', timestamp: 1_780_000_000_000, nonce: new Uint8Array(16).fill(9), body: encodeUploadRequest({ origin: 'packchain.gateway/line-3', from: 0, entries: [new Uint8Array([0xa0])], certs: [] }) };
    expect(Buffer.from(parts.body).toString('hex')).toBe('a500010178187061636b636861696e2e676174657761792f6c696e652d330200038141a00480');
    expect(Buffer.from(syncRequestMessage(parts, signer.name)).toString()).toBe(
      'packchain.sync-request/v1\nPOST\n/v1/gateway/upload\n1780000000000\nCQkJCQkJCQkJCQkJCQkJCQ\nff8ef6e85c9d3cc07eed69f01690ad7a250f5678ed3efc336b939946cb3a99ef\npackchain.gateway/line-3\n',
    );
    expect(signSyncRequest(parts, signer)).toBe(
      'Packchain-Gateway key=packchain.gateway/line-3+4b5fcfb1 ts=1780000000000 nonce=CQkJCQkJCQkJCQkJCQkJCQ sig=dFqsY61OXDiHWmNnDOqyaVO9amwbscCIe1Jyj47vdlW62tYXu3jFvJqQMVHGay7/O2bEavn0uh7cVKDAhF+9BA==',
    );
    expect(formatVerifierKey(signer.name, signer.publicKey)).toBe('packchain.gateway/line-3+4b5fcfb1+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs');
  });
});
