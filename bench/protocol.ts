/**
 * Protocol benchmarks (issue 3): frame decode, COSE verify on node:crypto and @noble, serial line
 * decode, Merkle append and proof generation at 1 M leaves, and the per-frame protocol work of the
 * gateway's verify workers besides the signature itself (parseSign1, encodeLeaf, SHA-256, issue 6). Inputs are built once, outside the
 * timed loops; each loop checks its result so nothing is optimised away.
 */
import {
  coseKid,
  decodeFrame,
  encodeFrame,
  encodeLeaf,
  encodeLine,
  importPublicKey,
  importPublicKeyPortable,
  LineDecoder,
  MemoryHashStore,
  proveRecord,
  publicKeyFromSecretPortable,
  signPortable,
  signSign1,
  spkiPortable,
  treeHash,
  verifyInclusion,
  verifySign1,
  verifySign1Portable,
  verifySignature,
  leafHash,
  nodeHash,
  parseSign1,
  sha256,
  buildProofBundle,
  TrustStore,
  verifyProofBundle,
  type SignatureAlg,
  type SohFrame,
} from '../protocol/index.js';
import { makeBundleFixture } from '../protocol/bundle-testkit.js';
import { measure, timeOnce, type Result } from './harness.js';

function sampleFrame(counter: number): SohFrame {
  return {
    v: 1,
    serial: 'PACK-000123',
    counter,
    time: 1_764_000_000_000 + counter * 1000,
    soc: 734,
    soh: 981,
    voltage: 52_480,
    current: -12_345,
    tempMin: 231,
    tempMax: 268,
    cycles: 412,
    cells: Array.from({ length: 16 }, (_, i) => 3270 + (i % 5)),
    remainingCapacity: 98_100,
    resistance: 18_500,
    alarms: 0,
    firmware: '1.4.2',
  };
}

function signedFrame(alg: SignatureAlg, secretKey: Uint8Array, counter: number) {
  const pub = publicKeyFromSecretPortable(alg, secretKey);
  const kid = coseKid(spkiPortable(pub));
  return { cose: signSign1({ alg, kid, payload: encodeFrame(sampleFrame(counter)), secretKey }), raw: pub.raw, kid };
}

/** Trust material and a proof bundle, built once (async: CA keys are WebCrypto). */
export async function identityFixture() {
  const fx = await makeBundleFixture('Ed25519', 1000);
  const trust = await TrustStore.create(fx.trustBundle);
  const coldTrust = await TrustStore.create(fx.trustBundle, { cacheSize: 0 });
  const bundle = buildProofBundle({ index: 500, leaf: fx.leaves[500]!, chain: fx.chain, checkpoint: fx.checkpoint, reader: fx.store });
  return { fx, trust, coldTrust, bundle };
}

export function* identityBenchmarks(f: Awaited<ReturnType<typeof identityFixture>>): Generator<Result> {
  const now = new Date('2026-06-01T00:00:00Z');
  f.trust.verifyChain(f.fx.chain, now);
  yield { name: 'verifyChain (cached per device)', opsPerSec: measure(() => void f.trust.verifyChain(f.fx.chain, now)) };
  yield {
    name: 'verifyChain (cold, no cache; line CA pre-verified)',
    opsPerSec: measure(() => void f.coldTrust.verifyChain(f.fx.chain, now), 300),
  };
  const trust = { trust: f.trust, logs: [f.fx.gatewayVerifier], witnesses: [f.fx.witnessVerifier] };
  yield { name: 'verifyProofBundle (1000-leaf log, witnessed)', opsPerSec: measure(() => void verifyProofBundle(f.bundle, trust), 300) };
}

export function* protocolBenchmarks(): Generator<Result> {
  const payload = encodeFrame(sampleFrame(1));
  yield { name: 'decodeFrame (16 cells)', opsPerSec: measure(() => {
      if (decodeFrame(payload).counter !== 1) throw new Error('bad decode');
    }), note: `${payload.length}-byte payload` };

  const secrets: Record<SignatureAlg, Uint8Array> = { Ed25519: new Uint8Array(32).fill(7), ES256: new Uint8Array(32).fill(9) };
  for (const alg of ['Ed25519', 'ES256'] as const) {
    const { cose, raw, kid } = signedFrame(alg, secrets[alg], 1);
    const nodeKey = { publicKey: importPublicKey(alg, raw), kid };
    const nobleKey = { publicKey: importPublicKeyPortable(alg, raw), kid };
    const tbs = new Uint8Array(220).fill(1);
    const sig = signPortable(alg, secrets[alg], tbs);
    yield { name: `raw verifySignature ${alg} (node:crypto)`, opsPerSec: measure(() => void verifySignature(nodeKey.publicKey, tbs, sig)) };
    yield { name: `verifySign1 ${alg} (node:crypto, cached key)`, opsPerSec: measure(() => void verifySign1(cose, nodeKey)) };
    yield {
      name: `verifySign1 + decodeFrame ${alg} (node:crypto)`,
      opsPerSec: measure(() => void decodeFrame(verifySign1(cose, nodeKey).payload)),
    };
    yield { name: `verifySign1Portable ${alg} (@noble)`, opsPerSec: measure(() => void verifySign1Portable(cose, nobleKey), 300) };
  }

  // The protocol work a verify worker does per frame around the signature check (issue 6 item 8).
  {
    const { cose } = signedFrame('Ed25519', secrets.Ed25519, 3);
    const certSha256 = new Uint8Array(32).fill(1);
    yield {
      name: 'parseSign1 (profile frame, Sig_structure built)',
      opsPerSec: measure(() => {
        if (parseSign1(cose).signature.length !== 64) throw new Error('bad parse');
      }),
      note: `${cose.length}-byte COSE_Sign1`,
    };
    yield {
      name: 'encodeLeaf (frame-sized log leaf)',
      opsPerSec: measure(() => {
        if (encodeLeaf({ receivedAt: 1_764_000_000_123, source: 'serial:/dev/ttyUSB0', certSha256, frame: cose }).length < cose.length) throw new Error('short leaf');
      }),
    };
    yield { name: 'sha256 of a COSE frame', opsPerSec: measure(() => void sha256(cose)) };
    yield { name: 'Merkle leafHash of a COSE frame', opsPerSec: measure(() => void leafHash(cose)) };
    const l = sha256(cose);
    yield { name: 'Merkle nodeHash', opsPerSec: measure(() => void nodeHash(l, l)) };
  }

  const { cose } = signedFrame('Ed25519', secrets.Ed25519, 2);
  const line = encodeLine({ type: 'frame', cose });
  const decoder = new LineDecoder();
  yield {
    name: 'LineDecoder.push (one frame line)',
    opsPerSec: measure(() => {
      if (decoder.push(line).length !== 1) throw new Error('expected one event');
    }),
    note: `${line.length}-byte line`,
  };

  const N = 1_000_000;
  const leaf = new Uint8Array(300).fill(3);
  let store = new MemoryHashStore(N);
  const appendMs = timeOnce(() => {
    store = new MemoryHashStore(N);
    for (let i = 0; i < N; i++) {
      leaf[0] = i & 0xff;
      leaf[1] = (i >> 8) & 0xff;
      leaf[2] = i >> 16;
      store.append(leaf);
    }
  });
  yield { name: 'Merkle append (1 M leaves of 300 B)', opsPerSec: N / (appendMs / 1000), note: `${(appendMs / 1000).toFixed(2)} s for 1 M` };

  const root = treeHash(N, store);
  let k = 0;
  yield {
    name: 'inclusion proof generation at 1 M leaves',
    opsPerSec: measure(() => {
      k = (k + 7919) % N;
      if (proveRecord(N, k, store).length === 0) throw new Error('empty proof');
    }),
  };
  leaf[0] = 5;
  leaf[1] = 0;
  leaf[2] = 0;
  const proof5 = proveRecord(N, 5, store);
  const lh = leafHash(leaf);
  yield { name: 'inclusion proof verification at 1 M leaves', opsPerSec: measure(() => {
      verifyInclusion(5, N, lh, proof5, root);
    }) };
}
