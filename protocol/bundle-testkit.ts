/**
 * Test-only fixture for proof bundles (not exported from protocol/index.ts): a CA hierarchy, a
 * provisioned device signing frames the way firmware does, a gateway log with leaves, a signed and
 * witnessed checkpoint. Used by bundle.test.ts and the vector generator test/vectors/bundle.gen.ts.
 */
import { createCosigner, createNoteSigner, verifierOf } from './note-signer.js';
import { encodeFrame } from './frame.js';
import { signSign1 } from './cose-portable.js';
import { keyId } from './identity-cert.js';
import { issueDevice, makeCrl, makeIntermediate, makeRoot, serialOf, type TestDevice } from './identity-testkit.js';
import { encodeLeaf } from './leaf.js';
import { MemoryHashStore, treeHash } from './merkle.js';
import { addSignatures } from './note.js';
import { gatewayOrigin, signCheckpoint } from './checkpoint.js';
import { sha256 } from './crypto.js';
import type { SignatureAlg } from './crypto.js';
import type { TrustBundle } from './identity-pem.js';
import type { SohFrame } from './frame-fields.js';
import { formatVerifierKey, type NoteVerifier } from './note-keys.js';

export const GATEWAY = 'line-3';
export const WITNESS = 'ledger.packchain.example';
export const RECEIVED_AT = Date.parse('2026-06-01T08:00:00Z');

export function frameOf(serial: string, counter: number): SohFrame {
  return {
    v: 1,
    serial,
    counter,
    time: RECEIVED_AT - 1500 + counter * 1000,
    soc: 700 + (counter % 300),
    soh: 990,
    voltage: 51_200,
    current: -8_000,
    tempMin: 240,
    tempMax: 262,
    cycles: 101,
    cells: Array.from({ length: 16 }, (_, i) => 3200 + i),
    remainingCapacity: 99_000,
    resistance: 17_000,
    alarms: 0,
    firmware: '1.0.0',
  };
}

export function signFrame(device: TestDevice, frame: SohFrame): Uint8Array {
  return signSign1({ alg: device.alg, kid: keyId(device.publicKey), payload: encodeFrame(frame), secretKey: device.secretKey });
}

export interface BundleFixture {
  readonly trustBundle: TrustBundle;
  readonly device: TestDevice;
  readonly chain: Uint8Array[];
  readonly leaves: Uint8Array[];
  readonly store: MemoryHashStore;
  /** Signed by the gateway and cosigned by the witness. */
  readonly checkpoint: string;
  readonly gatewayVerifier: NoteVerifier;
  readonly witnessVerifier: NoteVerifier;
  /** The same two keys as C2SP verifier key strings (what operators configure). */
  readonly gatewayKey: string;
  readonly witnessKey: string;
  /** A second device of the same line, revoked on the line CRL. */
  readonly other: TestDevice;
  /** A third device of the same line, in good standing (for mismatch tests). */
  readonly sibling: TestDevice;
}

export async function makeBundleFixture(alg: SignatureAlg = 'Ed25519', leafCount = 11, seeds = { gateway: 1, witness: 2 }): Promise<BundleFixture> {
  const root = await makeRoot('Ed25519');
  const line = await makeIntermediate(root, 'ES256');
  const device = await issueDevice(line, alg, 'PACK-0042');
  const other = await issueDevice(line, alg, 'PACK-0043');
  const sibling = await issueDevice(line, alg, 'PACK-0044');
  const crl = await makeCrl(line, [{ serialHex: serialOf(other.cert), date: new Date(RECEIVED_AT + 3_600_000) }]);
  const rootCrl = await makeCrl(root);
  const trustBundle: TrustBundle = {
    roots: [root.cert],
    intermediates: [line.cert],
    crls: [crl, rootCrl],
  };
  const chain = [device.cert, line.cert];
  const store = new MemoryHashStore();
  const leaves: Uint8Array[] = [];
  for (let i = 0; i < leafCount; i++) {
    const leaf = encodeLeaf({ receivedAt: RECEIVED_AT + i * 1000, source: 'serial:/dev/ttyUSB0', certSha256: sha256(device.cert), frame: signFrame(device, frameOf('PACK-0042', i)) });
    leaves.push(leaf);
    store.append(leaf);
  }
  const origin = gatewayOrigin(GATEWAY);
  const gateway = createNoteSigner(origin, new Uint8Array(32).fill(seeds.gateway));
  const witness = createCosigner(WITNESS, new Uint8Array(32).fill(seeds.witness), () => Math.floor(RECEIVED_AT / 1000) + 60);
  const signed = signCheckpoint({ origin, size: leafCount, rootHash: treeHash(leafCount, store) }, [gateway]);
  const checkpoint = addSignatures(signed, [witness]);
  return { trustBundle, device, chain, leaves, store, checkpoint, gatewayVerifier: verifierOf(gateway),
    witnessVerifier: verifierOf(witness),
    gatewayKey: formatVerifierKey(gateway.name, gateway.publicKey, 'ed25519'),
    witnessKey: formatVerifierKey(witness.name, witness.publicKey, 'cosignature'),
    other,
    sibling,
  };
}
