/**
 * The in-browser proof verifier (entry point of the assets' verify-*.js bundle): runs protocol's
 * own verifyProofBundle — checkpoint note signature and witness cosignature, RFC 9162 inclusion,
 * device chain with CRLs through TrustStore, COSE signature, serial match — against the trust
 * material of GET /api/v1/trust, and turns its result or its first ProtocolError into one line per
 * check for the page. Nothing here re-implements a check: a check's status is derived from where
 * verifyProofBundle stopped (the order is docs/protocol.md §9 and bundle.ts).
 */
import {
  TrustStore,
  decodeTrustBundle,
  isProtocolError,
  parseVerifierKey,
  toHex,
  verifyProofBundle,
  type NoteVerifier,
  type VerifiedBundle,
} from '../../protocol/index.js';
import { PROOF_CHECKS, type ProofCheck, type ProofCheckResult, type ProofReport, type TrustResponse } from './api-types.js';

/** The check that reports a ProtocolError code (verifyProofBundle runs the checks in PROOF_CHECKS order). */
export function checkOfCode(code: string, message: string): ProofCheck {
  if (code === 'TRUST_BUNDLE') return 'trust';
  if (code === 'BUNDLE_MALFORMED' || code.startsWith('CBOR_')) return 'bundle';
  if (code === 'CHECKPOINT_WITNESSES') return 'witness';
  if (code.startsWith('NOTE_') || code.startsWith('CHECKPOINT_')) return 'checkpoint';
  if (code.startsWith('MERKLE_') || code === 'LEAF_MALFORMED') return 'inclusion';
  if (code.startsWith('CERT_') || code.startsWith('CHAIN_') || code.startsWith('CRL_')) return 'chain';
  if (code.startsWith('COSE_') || code.startsWith('FRAME_')) return 'cose';
  // The two BUNDLE_MISMATCH cases of verifyProofBundle: leaf↔certificate (chain) and frame↔certificate serial.
  if (code === 'BUNDLE_MISMATCH') return message.includes('frame serial') ? 'serial' : 'chain';
  return 'bundle';
}

interface Trust {
  readonly store: TrustStore;
  readonly logs: NoteVerifier[];
  readonly witness: NoteVerifier;
  readonly summary: string;
}

async function loadTrust(t: TrustResponse): Promise<Trust> {
  const bundle = decodeTrustBundle(t.trustBundle);
  const store = await TrustStore.create(bundle);
  const logs = t.gateways.map((g) => parseVerifierKey(g.vkey));
  const witness = parseVerifierKey(t.witness);
  const summary =
    `${bundle.roots.length} root(s), ${bundle.intermediates.length} intermediate(s), ${bundle.crls.length} CRL(s) with verified signatures; ` +
    `${logs.length} gateway key(s); witness ${witness.name}`;
  return { store, logs, witness, summary };
}

function passed(v: VerifiedBundle, trust: Trust, proofHashes: number): Record<ProofCheck, string> {
  const receivedAt = new Date(v.leaf.receivedAt).toISOString();
  return {
    trust: trust.summary,
    bundle: `c2sp.org/tlog-proof@v1, leaf index ${v.index}, ${proofHashes} proof hash(es)`,
    checkpoint: `signed by the log key of ${v.origin}; tree size ${v.treeSize}, root ${toHex(v.rootHash).slice(0, 16)}…`,
    witness: v.witnesses.map((w) => `cosigned by ${w.name}${w.timestamp === undefined ? '' : ` at ${new Date(w.timestamp * 1000).toISOString()}`}`).join('; '),
    inclusion: `leaf ${v.index} is in the tree of size ${v.treeSize} (RFC 9162 inclusion proof)`,
    chain: `device ${v.device.packSerial} (${v.device.alg}) chains to a trusted root, not revoked, valid at ${receivedAt}`,
    cose: `COSE_Sign1 verifies under the certified device key, kid ${toHex(v.device.kid)}`,
    serial: `frame serial ${v.frame.serial} = certificate serial ${v.device.packSerial}; counter ${v.frame.counter}`,
  };
}

function failure(code: string, message: string, failed: ProofCheck, okDetail: (c: ProofCheck) => string): ProofReport {
  const at = PROOF_CHECKS.indexOf(failed);
  const checks: ProofCheckResult[] = PROOF_CHECKS.map((check, i) => {
    if (i < at) return { check, status: 'ok', detail: okDetail(check) };
    if (i === at) return { check, status: 'fail', detail: `${code}: ${message}` };
    return { check, status: 'skipped', detail: 'not reached' };
  });
  return { ok: false, code, checks };
}

/**
 * Verifies a proof bundle (the text GET …/proof served) against the ledger's trust material.
 * Requires one witness cosignature from the ledger's key. Never throws: every failure becomes a
 * report with the failing check, its ProtocolError code and message.
 */
export async function verifyProof(bundleText: string, trustResponse: TrustResponse): Promise<ProofReport> {
  const codeOf = (e: unknown): { code: string; message: string } =>
    isProtocolError(e) ? { code: e.code, message: e.message } : { code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) };
  let trust: Trust;
  try {
    trust = await loadTrust(trustResponse);
  } catch (e) {
    const { code, message } = codeOf(e);
    return failure(code, message, 'trust', () => '');
  }
  try {
    const v = verifyProofBundle(bundleText, { trust: trust.store, logs: trust.logs, witnesses: [trust.witness], requiredWitnesses: 1 });
    const proofHashes = bundleText.split('\n\n')[0]?.split('\n').length ?? 3;
    const details = passed(v, trust, proofHashes - 3);
    return {
      ok: true,
      checks: PROOF_CHECKS.map((check) => ({ check, status: 'ok', detail: details[check] })),
      verified: {
        origin: v.origin,
        treeSize: v.treeSize,
        index: v.index,
        serial: v.frame.serial,
        counter: v.frame.counter,
        receivedAt: new Date(v.leaf.receivedAt).toISOString(),
        witnesses: v.witnesses.map((w) => w.name),
      },
    };
  } catch (e) {
    const { code, message } = codeOf(e);
    return failure(code, message, checkOfCode(code, message), (c) => (c === 'trust' ? trust.summary : 'passed'));
  }
}
