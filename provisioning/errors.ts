/**
 * provisioning's one error class. Every failure the station reports is a ProvisioningError whose
 * `code` says what went wrong; callers branch on `code`, never on message text, and messages start
 * with "provisioning: ". A technician sees the code, the message and — for a pack attempt — a
 * distinct process exit code (EXIT_CODES), so a line script or a PLC can tell "plug it in again"
 * (NO_DEVICE, DEVICE_LOST) from "set the pack aside" (POP_FAILED, SELFTEST_FAILED) without parsing
 * text. docs/provisioning.md lists the codes with what the technician does about each.
 */

/** Why one pack attempt failed (provision pack / line). */
export type PackFailureCode =
  | 'NO_DEVICE' // the port does not exist or cannot be opened
  | 'NO_ANSWER' // the port opened but the device did not answer in time
  | 'UNKNOWN_FIRMWARE' // hello version, model or firmware outside what this station accepts
  | 'ALREADY_PROVISIONED' // the device holds a certificate chain; --force re-provisions and revokes the old one
  | 'POP_FAILED' // the device's proof-of-possession signature does not verify under the key it reported
  | 'SELFTEST_FAILED' // the device's self-test frame does not verify end to end or its values are implausible
  | 'SERIAL_IN_USE' // another pack holds an active certificate for this pack serial
  | 'KEY_IN_USE' // this public key is already registered to an active certificate
  | 'DEVICE_LOST' // the device went away (unplugged, port closed) in the middle of the attempt
  | 'DEVICE_ERROR'; // the device answered a step with an unexpected error status or a malformed message

/** Station, CA and registry failures (not tied to one pack). */
export type StationErrorCode =
  | 'USAGE' // a bad argument or option value (serial pattern, reason, scanner file line, ...)
  | 'CA_EXISTS' // ca init over an existing CA directory
  | 'CA_MISSING' // no CA in the station directory (run `provision ca init`)
  | 'CA_PASSPHRASE' // wrong passphrase for an encrypted CA key, or none given
  | 'CA_CORRUPT' // a CA file unreadable or inconsistent (certificate does not match key, bad state file)
  | 'REGISTRY' // the registry file is unreadable or a write to it failed
  | 'NOT_FOUND'; // revoke/show of a pack serial the registry does not know, or with nothing to revoke

export type ProvisioningErrorCode = PackFailureCode | StationErrorCode;

/**
 * Process exit codes of `packchain provision …` (0 is PASS / success). 1 is commander's usage error;
 * 3 means "line mode finished with at least one FAIL"; station errors use 4..9, pack failures 10..19.
 */
export const EXIT_CODES: Readonly<Record<ProvisioningErrorCode, number>> = Object.freeze({
  USAGE: 2,
  CA_EXISTS: 4,
  CA_MISSING: 5,
  CA_PASSPHRASE: 6,
  CA_CORRUPT: 7,
  REGISTRY: 8,
  NOT_FOUND: 9,
  NO_DEVICE: 10,
  NO_ANSWER: 11,
  UNKNOWN_FIRMWARE: 12,
  ALREADY_PROVISIONED: 13,
  POP_FAILED: 14,
  SELFTEST_FAILED: 15,
  SERIAL_IN_USE: 16,
  KEY_IN_USE: 17,
  DEVICE_LOST: 18,
  DEVICE_ERROR: 19,
});

/** Exit code of `provision line` when at least one pack failed. */
export const EXIT_LINE_FAILURES = 3;

export class ProvisioningError extends Error {
  override readonly name = 'ProvisioningError';

  constructor(
    readonly code: ProvisioningErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function isProvisioningError(e: unknown): e is ProvisioningError {
  return e instanceof ProvisioningError;
}
