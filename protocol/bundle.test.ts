import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { toBase64 } from './bytes.js';
import { buildProofBundle, decodeProofBundle, encodeProofBundle, MAX_BUNDLE_BYTES, verifyProofBundle, type BundleTrust } from './bundle.js';
import { frameOf, GATEWAY, makeBundleFixture, RECEIVED_AT, signFrame, type BundleFixture } from './bundle-testkit.js';
import { sha256 } from './crypto.js';
import { ProtocolError } from './errors.js';
import { TrustStore } from './identity.js';
import { makeRoot, makeIntermediate, issueDevice, makeCrl } from './identity-testkit.js';
import { MemoryHashStore, treeHash } from './merkle.js';
import { signCheckpoint } from './checkpoint.js';
import { encodeLeaf } from './leaf.js';
import { createNoteSigner, verifierOf } from './note-signer.js';
import { codeOf } from './testing.js';


let fx: BundleFixture;
let trust: BundleTrust;
let bundle: string;

beforeAll(async () => {
  fx = await makeBundleFixture();
  trust = { trust: await TrustStore.create(fx.trustBundle), logs: [fx.gatewayVerifier], witnesses: [fx.witnessVerifier] };
  bundle = buildProofBundle({ index: 5, leaf: fx.leaves[5]!, chain: fx.chain, checkpoint: fx.checkpoint, reader: fx.store });
});

/** A one-leaf log by the fixture's gateway key holding `frame`, as a bundle for leaf 0. */
function singleLeafBundle(cert: Uint8Array, frame: Uint8Array, chain: readonly Uint8Array[]): string {
  const gateway = createNoteSigner(`packchain.gateway/${GATEWAY}`, new Uint8Array(32).fill(1));
  const store = new MemoryHashStore();
  const leaf = encodeLeaf({ receivedAt: RECEIVED_AT, source: 'ble:AA:BB:CC:DD:EE:FF', certSha256: sha256(cert), frame });
  store.append(leaf);
  const checkpoint = signCheckpoint({ origin: gateway.name, size: 1, rootHash: treeHash(1, store) }, [gateway]);
  return buildProofBundle({ index: 0, leaf, chain, checkpoint, reader: store });
}

/** Rewrites one part of the valid bundle. */
const withParts = (edit: (b: ReturnType<typeof decodeProofBundle>) => Parameters<typeof encodeProofBundle>[0]) =>
  encodeProofBundle(edit(decodeProofBundle(bundle)));

describe('proof bundles', () => {
  it('is a C2SP tlog-proof: header, extra, index, proof hashes, blank line, checkpoint', () => {
    const lines = bundle.split('\n');
    expect(lines[0]).toBe('c2sp.org/tlog-proof@v1');
    expect(lines[1]).toMatch(/^extra [A-Za-z0-9+/]+=*$/);
    expect(lines[2]).toBe('index 5');
    expect(bundle).toContain(`\n\n${fx.checkpoint}`);
    expect(bundle.endsWith(fx.checkpoint)).toBe(true);
  });

  it('round-trips byte-identically', () => {
    expect(encodeProofBundle(decodeProofBundle(bundle))).toBe(bundle);
  });

  describe('verifyProofBundle', () => {
    it('accepts a valid bundle and reports the frame, device, gateway and witness', () => {
      const v = verifyProofBundle(bundle, trust);
      expect(v.origin).toBe(`packchain.gateway/${GATEWAY}`);
      expect(v.index).toBe(5);
      expect(v.treeSize).toBe(11);
      expect(v.frame).toEqual(frameOf('PACK-0042', 5));
      expect(v.device.packSerial).toBe('PACK-0042');
      expect(v.leaf.receivedAt).toBe(RECEIVED_AT + 5000);
      expect(v.witnesses.map((w) => w.name)).toEqual(['ledger.packchain.example']);
    });

    it('accepts every leaf of the log, including the first and the last', () => {
      for (const i of [0, 1, 9, 10]) {
        const b = buildProofBundle({ index: i, leaf: fx.leaves[i]!, chain: fx.chain, checkpoint: fx.checkpoint, reader: fx.store });
        expect(verifyProofBundle(b, trust).frame.counter).toBe(i);
      }
    });

    it('when the leaf is swapped for another of the same log → MERKLE_PROOF', () => {
      expect(codeOf(() => verifyProofBundle(withParts((b) => ({ ...b, leaf: fx.leaves[6]! })), trust))).toBe('MERKLE_PROOF');
    });

    it('when the index is changed → MERKLE_PROOF', () => {
      expect(codeOf(() => verifyProofBundle(withParts((b) => ({ ...b, index: 4 })), trust))).toBe('MERKLE_PROOF');
    });

    it('when a proof hash is flipped → MERKLE_PROOF', () => {
      const flipped = withParts((b) => ({ ...b, proof: b.proof.map((h, i) => (i === 1 ? h.map((x, j) => (j === 0 ? x ^ 1 : x)) : h)) }));
      expect(codeOf(() => verifyProofBundle(flipped, trust))).toBe('MERKLE_PROOF');
    });

    it('when the gateway key is not trusted → NOTE_UNVERIFIED', () => {
      const stranger = verifierOf(createNoteSigner(`packchain.gateway/${GATEWAY}`, new Uint8Array(32).fill(99)));
      expect(codeOf(() => verifyProofBundle(bundle, { ...trust, logs: [stranger] }))).toBe('NOTE_UNVERIFIED');
      expect(codeOf(() => verifyProofBundle(bundle, { ...trust, logs: [] }))).toBe('NOTE_UNVERIFIED');
    });

    it('when the checkpoint root was rewritten → NOTE_SIGNATURE', () => {
      const forged = bundle.replace(/\n11\n/, '\n12\n');
      expect(codeOf(() => verifyProofBundle(forged, trust))).toBe('NOTE_SIGNATURE');
    });

    it('when more witnesses are required than cosigned → CHECKPOINT_WITNESSES', () => {
      expect(codeOf(() => verifyProofBundle(bundle, { ...trust, requiredWitnesses: 2 }))).toBe('CHECKPOINT_WITNESSES');
      expect(verifyProofBundle(bundle, { ...trust, requiredWitnesses: 1 }).witnesses).toHaveLength(1);
    });

    it('when the device chain is from a foreign root → CHAIN_UNTRUSTED', async () => {
      const root = await makeRoot('Ed25519', 'Foreign Root');
      const foreign = await TrustStore.create({ roots: [root.cert], intermediates: [], crls: [await makeCrl(root)] });
      expect(codeOf(() => verifyProofBundle(bundle, { ...trust, trust: foreign }))).toBe('CHAIN_UNTRUSTED');
    });

    it('when the chain carries a different certificate than the leaf names → BUNDLE_MISMATCH', () => {
      expect(codeOf(() => verifyProofBundle(withParts((b) => ({ ...b, chain: [fx.sibling.cert, ...b.chain.slice(1)] })), trust))).toBe(
        'BUNDLE_MISMATCH',
      );
    });

    it('when the frame was signed by another key than the certified one → COSE_KID_MISMATCH', async () => {
      // A gateway that logged a frame signed by another pack under this pack's certificate.
      const root = await makeRoot('Ed25519');
      const impostor = await issueDevice(await makeIntermediate(root, 'Ed25519'), 'Ed25519', 'PACK-0042');
      const b = singleLeafBundle(fx.device.cert, signFrame(impostor, frameOf('PACK-0042', 1)), fx.chain);
      expect(codeOf(() => verifyProofBundle(b, { ...trust, witnesses: [] }))).toBe('COSE_KID_MISMATCH');
    });

    it('when the frame names another pack than the certificate → BUNDLE_MISMATCH', () => {
      const b = singleLeafBundle(fx.device.cert, signFrame(fx.device, frameOf('PACK-9999', 1)), fx.chain);
      expect(codeOf(() => verifyProofBundle(b, { ...trust, witnesses: [] }))).toBe('BUNDLE_MISMATCH');
    });

    it('when the pack certificate is on its CRL → CERT_REVOKED', () => {
      const chain = [fx.other.cert, fx.chain[1]!];
      const b = singleLeafBundle(fx.other.cert, signFrame(fx.other, frameOf('PACK-0043', 1)), chain);
      expect(codeOf(() => verifyProofBundle(b, { ...trust, witnesses: [] }))).toBe('CERT_REVOKED');
    });

    it('when the trust bundle lacks the line CA CRL → CRL_MISSING', async () => {
      const noCrl = await TrustStore.create({ ...fx.trustBundle, crls: fx.trustBundle.crls.slice(1) });
      expect(codeOf(() => verifyProofBundle(bundle, { ...trust, trust: noCrl }))).toBe('CRL_MISSING');
    });
  });

  describe('decodeProofBundle', () => {
    const cases: [string, () => string, string][] = [
      ['a wrong header', () => bundle.replace('c2sp.org/tlog-proof@v1', 'c2sp.org/tlog-proof@v2'), 'BUNDLE_MALFORMED'],
      ['no extra line', () => bundle.replace(/^(.*\n)extra [^\n]*\n/, '$1'), 'BUNDLE_MALFORMED'],
      ['an index with a leading zero', () => bundle.replace('index 5', 'index 05'), 'BUNDLE_MALFORMED'],
      ['a negative index', () => bundle.replace('index 5', 'index -5'), 'BUNDLE_MALFORMED'],
      ['a short proof hash', () => bundle.replace(/\nindex 5\n[^\n]*\n/, `\nindex 5\n${toBase64(new Uint8Array(31))}\n`), 'BUNDLE_MALFORMED'],
      ['non-canonical base64 in a hash', () => bundle.replace(/\nindex 5\n([^\n]*)=\n/, '\nindex 5\n$1x\n'), 'BUNDLE_MALFORMED'],
      ['no checkpoint', () => bundle.slice(0, bundle.indexOf('\n\n') + 2), 'BUNDLE_MALFORMED'],
      ['no blank line', () => bundle.replace('\n\n', '\n'), 'BUNDLE_MALFORMED'],
      ['text beyond the cap', () => bundle + ' '.repeat(MAX_BUNDLE_BYTES), 'BUNDLE_MALFORMED'],
      ['extra that is not the packchain map', () => bundle.replace(/extra [^\n]*/, `extra ${toBase64(Uint8Array.of(0x80))}`), 'BUNDLE_MALFORMED'],
      ['extra with non-deterministic CBOR', () => bundle.replace(/extra [^\n]*/, `extra ${toBase64(Uint8Array.of(0xa1, 0x18, 0x00, 0x01))}`), 'CBOR_NON_MINIMAL'],
    ];
    for (const [what, make, code] of cases) {
      it(`rejects ${what} with ${code}`, () => {
        expect(codeOf(() => decodeProofBundle(make()))).toBe(code);
      });
    }
  });

  it('fed random or mutated text, verifyProofBundle throws only ProtocolError and never accepts a change', () => {
    fc.assert(
      fc.property(fc.nat(bundle.length - 1), fc.integer({ min: 32, max: 126 }), (at, ch) => {
        const mutated = bundle.slice(0, at) + String.fromCharCode(ch) + bundle.slice(at + 1);
        if (mutated === bundle) return;
        try {
          const v = verifyProofBundle(mutated, trust);
          // A change can only be accepted where it changes nothing verified: an unknown signature
          // line's text is not covered. The verified content must be identical.
          expect(v.frame).toEqual(frameOf('PACK-0042', 5));
          expect(v.index).toBe(5);
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError);
        }
      }),
      { numRuns: 400 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
        try {
          verifyProofBundle(junk, trust);
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('test/vectors/bundle.json', async () => {
  const { readFileSync } = await import('node:fs');
  const { decodeTrustBundle } = await import('./identity-pem.js');
  const { parseVerifierKey } = await import('./note-keys.js');
  const file = JSON.parse(readFileSync(new URL('../test/vectors/bundle.json', import.meta.url), 'utf8')) as {
    trustBundle: string;
    gatewayKey: string;
    witnessKey: string;
    vectors: { name: string; expect: string; bundle: string; requiredWitnesses?: number }[];
  };
  const vtrust: BundleTrust = {
    trust: await TrustStore.create(decodeTrustBundle(file.trustBundle)),
    logs: [parseVerifierKey(file.gatewayKey)],
    witnesses: [parseVerifierKey(file.witnessKey)],
  };
  for (const v of file.vectors) {
    it(`${v.name} → ${v.expect}`, () => {
      expect(codeOf(() => verifyProofBundle(v.bundle, { ...vtrust, requiredWitnesses: v.requiredWitnesses ?? 0 }))).toBe(v.expect);
      if (v.expect === 'ok') expect(encodeProofBundle(decodeProofBundle(v.bundle))).toBe(v.bundle);
    });
  }
});
