/**
 * Revoking a device certificate (docs/protocol.md §3.3; RFC 5280 §5): the registry record is marked
 * revoked first, then a new line CRL is issued from every revoked certificate the registry holds —
 * the registry is the source of truth, so a crash between the two steps is repaired by the next
 * revocation or `provision ca crl`. Used by `provision revoke`, by `--force` re-provisioning
 * (superseded) and by the station for the certificate of an attempt that failed after it was issued.
 * Revocations run one at a time per CA: reading the revoked list and issuing the CRL must not
 * interleave, or a CRL built from an older list could follow a newer one.
 */
import { parseCrl, type CrlReason } from '../protocol/index.js';
import type { StationCa } from './ca.js';
import { ProvisioningError } from './errors.js';
import type { AttemptRecord, Registry } from './registry.js';

export type RevocationReason = CrlReason | 'unspecified';

/** Reasons `provision revoke --reason` accepts (RFC 5280 §5.3.1; cACompromise is not a device's). */
export const REVOCATION_REASONS: readonly RevocationReason[] = Object.freeze([
  'keyCompromise',
  'superseded',
  'cessationOfOperation',
  'affiliationChanged',
  'privilegeWithdrawn',
  'certificateHold',
  'unspecified',
]);

/** Checks a --reason value. Throws USAGE naming the accepted reasons. */
export function parseRevocationReason(text: string): RevocationReason {
  const r = REVOCATION_REASONS.find((x) => x === text);
  if (r === undefined) throw new ProvisioningError('USAGE', `provisioning: reason "${text}": expected one of ${REVOCATION_REASONS.join(', ')}`);
  return r;
}

export interface RevocationResult {
  /** The record as it is now (certStatus revoked). */
  record: AttemptRecord;
  /** Normalised serial of the revoked certificate. */
  serialHex: string;
  /** Number of the line CRL that lists it. */
  crlNumber: number;
  /** The record was already revoked (and already on the current CRL, or put there now). */
  alreadyRevoked: boolean;
}

const queues = new WeakMap<StationCa, Promise<unknown>>();

function oneAtATime<T>(ca: StationCa, fn: () => Promise<T>): Promise<T> {
  const run = (queues.get(ca) ?? Promise.resolve()).then(fn);
  queues.set(
    ca,
    run.catch(() => undefined),
  );
  return run;
}

/**
 * Revokes the certificate of `record` and issues a new line CRL listing it (and every other revoked
 * certificate). Idempotent: an already revoked record keeps its date and reason, and a CRL is issued
 * only if the current one lacks it. Throws NOT_FOUND when the record has no certificate or is not in
 * the registry, REGISTRY / CA_CORRUPT from the registry and CA.
 */
export function revokeCertificate(ca: StationCa, registry: Registry, record: AttemptRecord, reason: RevocationReason, note?: string): Promise<RevocationResult> {
  return oneAtATime(ca, async () => {
    const fresh = (await registry.history(record.serial)).find((r) => r.id === record.id);
    if (fresh === undefined) throw new ProvisioningError('NOT_FOUND', `provisioning: registry has no attempt ${record.id} for pack serial ${record.serial}`);
    const serialHex = fresh.certSerialHex;
    if (serialHex === undefined || fresh.certStatus === 'none') {
      throw new ProvisioningError('NOT_FOUND', `provisioning: attempt ${record.id} for pack serial ${record.serial} has no certificate to revoke`);
    }
    const alreadyRevoked = fresh.certStatus === 'revoked';
    const current = parseCrl(ca.currentCrls().line);
    if (alreadyRevoked && current.revoked.has(serialHex)) {
      return { record: fresh, serialHex, crlNumber: Number(current.crlNumber ?? 0n), alreadyRevoked };
    }
    const updated = alreadyRevoked
      ? fresh
      : await registry.update(fresh.id, {
          certStatus: 'revoked',
          revokedAt: ca.clock().toISOString(),
          revocationReason: reason,
          ...(note === undefined ? {} : { revocationNote: note }),
        });
    const { number } = await ca.issueLineCrl(await registry.revokedCerts());
    return { record: updated, serialHex, crlNumber: number, alreadyRevoked };
  });
}

/**
 * Revokes the active certificate of a pack serial. Throws NOT_FOUND when the registry does not
 * know the serial or holds no active certificate for it (the message says which).
 */
export async function revokeSerial(ca: StationCa, registry: Registry, serial: string, reason: RevocationReason, note?: string): Promise<RevocationResult> {
  const record = await registry.activeBySerial(serial);
  if (record === undefined) {
    const known = (await registry.history(serial)).length > 0;
    throw new ProvisioningError(
      'NOT_FOUND',
      known ? `provisioning: pack serial ${serial} has no active certificate (already revoked, or never passed)` : `provisioning: the registry does not know pack serial ${serial}`,
    );
  }
  return revokeCertificate(ca, registry, record, reason, note);
}
