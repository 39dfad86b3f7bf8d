/**
 * One pack attempt at the provisioning station (issue 5 item 2; docs/provisioning.md "What the
 * station does"), the same over a serial port or BLE (issue 8 item 1; the link is all that differs,
 * link.ts): open the port or BLE connection → identify (hello) → existing identity → registry checks → on-device
 * keygen → proof of possession (docs/protocol.md §4.7) → issue the X.509 certificate → write the
 * chain → end-to-end self-test → record PASS. Every attempt is a registry record from its first
 * step, so nothing is half-done: a failure before the certificate is issued leaves no certificate; a
 * failure after it (unplug, bad self-test) revokes that certificate on a new CRL before the attempt
 * is recorded FAIL; a station that dies mid-attempt leaves a PENDING record that `resolvePending`
 * revokes and fails on the next start. Each failure has a PackFailureCode, the step it happened in
 * and a reason a technician can act on; a retry of the same pack after any failure starts clean
 * (the pack's key is regenerated, a certificate of our own failed attempt is not "already
 * provisioned").
 */
import { randomBytes } from 'node:crypto';
import {
  FRAME_FIELD_BY_NAME,
  importPublicKey,
  isProtocolError,
  keyFingerprint,
  popMessage,
  sha256,
  toHex,
  toPem,
  verifySignature,
  type HelloInfo,
  type PublicKey,
  type SignatureAlg,
} from '../protocol/index.js';
import type { IssuedDevice, StationCa } from './ca.js';
import { BleLink, bleLinkName, checkBleAddress } from './ble-link.js';
import { PackSession } from './device.js';
import { EXIT_CODES, ProvisioningError, type PackFailureCode, type ProvisioningErrorCode } from './errors.js';
import type { AttemptRecord, Registry } from './registry.js';
import { revokeCertificate } from './revoke.js';
import { checkSelfTest } from './selftest.js';
import { SerialLink } from './serial-link.js';

/** The steps of an attempt, in order; a failure records the step it happened in. */
export const ATTEMPT_STEPS = ['open', 'identify', 'existing', 'registry', 'keygen', 'prove', 'issue', 'setchain', 'selftest', 'record'] as const;
export type AttemptStep = (typeof ATTEMPT_STEPS)[number];

export interface ProgressEvent {
  readonly port: string;
  readonly serial: string;
  readonly step: AttemptStep;
}

/** Options with the link named: `port` is the serial path or `ble:ADDRESS`. */
type Located = ProvisionPackOptions & { readonly port: string };

/** A pack reached over BLE (docs/protocol.md §6). */
export interface BleTarget {
  /** Device address `AA:BB:CC:DD:EE:FF`. */
  readonly address: string;
  /** D-Bus address of the bus BlueZ is on; default the system bus. */
  readonly busAddress?: string | undefined;
  /** BlueZ adapter (`hci0`); default the first one. */
  readonly adapter?: string | undefined;
  /** Finding, connecting and subscribing, in all (default 15000 ms). */
  readonly connectTimeoutMs?: number | undefined;
}

export interface ProvisionPackOptions {
  readonly ca: StationCa;
  readonly registry: Registry;
  /** Serial port path of the pack (exactly one of `port` and `ble`). */
  readonly port?: string;
  /** The pack's BLE address and how to reach BlueZ (exactly one of `port` and `ble`); recorded as port `ble:ADDRESS`. */
  readonly ble?: BleTarget;
  /** Pack serial to certify (frame serial rules: `^[A-Z0-9][A-Z0-9-]{0,31}$`, docs/protocol.md §2.1.3). */
  readonly serial: string;
  /** Model written into the certificate (OU); default: the model the pack reports. */
  readonly model?: string;
  /** Device key algorithm (default ES256: what secure elements sign). */
  readonly alg?: SignatureAlg;
  /** Re-provision a pack that holds a certificate; its active certificate is revoked (superseded) first. */
  readonly force?: boolean;
  /** Firmware versions this station accepts (default DEFAULT_ACCEPT_FIRMWARE). */
  readonly acceptFirmware?: RegExp;
  /** Per-request timeout (default 3000 ms). */
  readonly timeoutMs?: number;
  /** keygen timeout (default 5000 ms: key generation is slow on real BMUs). */
  readonly keygenTimeoutMs?: number;
  readonly station: string;
  readonly operator: string;
  readonly baudRate?: number;
  readonly now?: () => Date;
  /** Called as each step starts; awaited, so a caller can act between steps. Must not throw. */
  readonly onProgress?: (ev: ProgressEvent) => void | Promise<void>;
}

export interface AttemptOutcome {
  readonly result: 'PASS' | 'FAIL';
  readonly code?: PackFailureCode;
  readonly reason?: string;
  readonly step?: AttemptStep;
  readonly serial: string;
  /** The serial port path or `ble:ADDRESS`. */
  readonly port: string;
  readonly keyFingerprint?: string;
  readonly certSerialHex?: string;
  /** `PASS  <serial>  <alg>  key <fp>  cert <serial>` or `FAIL <serial> <CODE>: <reason>`. */
  readonly label: string;
  readonly durationMs: number;
  /** The attempt's registry record as finally written. */
  readonly record: AttemptRecord;
  /** Process exit code for this outcome (0 for PASS). */
  readonly exitCode: number;
}

export const DEFAULT_ACCEPT_FIRMWARE = /^1\.\d+\.\d+$/;
export const DEFAULT_TIMEOUT_MS = 3000;
export const DEFAULT_KEYGEN_TIMEOUT_MS = 5000;

const PACK_FAILURES: ReadonlySet<ProvisioningErrorCode> = new Set<PackFailureCode>([
  'NO_DEVICE', 'NO_ANSWER', 'UNKNOWN_FIRMWARE', 'ALREADY_PROVISIONED', 'POP_FAILED', 'SELFTEST_FAILED', 'SERIAL_IN_USE', 'KEY_IN_USE', 'DEVICE_LOST', 'DEVICE_ERROR',
]);

function isPackFailure(code: ProvisioningErrorCode): code is PackFailureCode {
  return PACK_FAILURES.has(code);
}

const SERIAL_PATTERN = FRAME_FIELD_BY_NAME.get('serial')?.pattern ?? /^[A-Z0-9][A-Z0-9-]{0,31}$/;

/** Throws USAGE unless `serial` can be both the certificate's and every frame's pack serial. */
export function checkPackSerial(serial: string): void {
  if (!SERIAL_PATTERN.test(serial)) {
    throw new ProvisioningError('USAGE', `provisioning: pack serial "${serial}": expected 1..32 of A-Z 0-9 -, not starting with - (${String(SERIAL_PATTERN)})`);
  }
}

/** The first 16 hex digits of a key fingerprint in groups of four joined by '-', as on the label. */
export function shortFingerprint(fp: string): string {
  return (fp.slice(0, 16).match(/.{1,4}/g) ?? []).join('-');
}

function fail(code: PackFailureCode, message: string, cause?: unknown): never {
  throw new ProvisioningError(code, `provisioning: ${message}`, cause === undefined ? undefined : { cause });
}

/**
 * Claims (serial, key) in the registry and issues the certificate, one claim at a time per registry:
 * the check "no active certificate for this serial or key" and the write that makes ours active must
 * not interleave with another port's, or two packs could end up with one serial or one cloned key.
 * Keyed by the registry because that is the state the lock protects.
 */
const claims = new WeakMap<Registry, Promise<unknown>>();
function oneClaimAtATime<T>(registry: Registry, fn: () => Promise<T>): Promise<T> {
  const run = (claims.get(registry) ?? Promise.resolve()).then(fn);
  claims.set(registry, run.catch(() => undefined));
  return run;
}

/** What an attempt has established so far (for the failure path). */
interface Attempt {
  record: AttemptRecord;
  step: AttemptStep;
  issued: IssuedDevice | undefined;
  fingerprint: string | undefined;
}

/** The link's name for records and messages. Throws USAGE unless exactly one of port / ble is given, or for a malformed BLE address. */
function locate(o: ProvisionPackOptions): Located {
  if ((o.port === undefined) === (o.ble === undefined)) throw new ProvisioningError('USAGE', 'provisioning: give exactly one of a serial port or a BLE address');
  if (o.ble !== undefined) return { ...o, port: bleLinkName(checkBleAddress(o.ble.address)) };
  return { ...o, port: o.port ?? '' };
}

/**
 * Runs one attempt on the pack at `port` or `ble` and records it. Resolves with PASS or FAIL (a pack
 * failure is an outcome, not an exception). Throws ProvisioningError USAGE for a bad serial, BLE
 * address or option before anything is recorded; REGISTRY, CA_CORRUPT and other station errors
 * propagate after the attempt is recorded FAIL as far as the registry allows (the issued
 * certificate, if any, is revoked first).
 */
export async function provisionPack(opts: ProvisionPackOptions): Promise<AttemptOutcome> {
  const o = locate(opts);
  checkPackSerial(o.serial);
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const keygenTimeoutMs = o.keygenTimeoutMs ?? DEFAULT_KEYGEN_TIMEOUT_MS;
  for (const [name, v] of [['timeout', timeoutMs], ['keygen timeout', keygenTimeoutMs]] as const) {
    if (!Number.isSafeInteger(v) || v < 1 || v > 600_000) throw new ProvisioningError('USAGE', `provisioning: ${name}: expected 1..600000 ms, got ${v}`);
  }
  const now = o.now ?? (() => new Date());
  const started = performance.now();
  const a: Attempt = {
    record: await o.registry.begin({ serial: o.serial, model: o.model ?? '', port: o.port, station: o.station, operator: o.operator }),
    step: 'open',
    issued: undefined,
    fingerprint: undefined,
  };
  const step = async (s: AttemptStep): Promise<void> => {
    a.step = s;
    await o.onProgress?.({ port: o.port, serial: o.serial, step: s });
  };
  let session: PackSession | undefined;
  try {
    await step('open');
    const link = o.ble === undefined ? await SerialLink.open({ path: o.port, ...(o.baudRate === undefined ? {} : { baudRate: o.baudRate }) }) : await BleLink.open(o.ble);
    session = new PackSession(link);
    await step('identify');
    const hello = await session.identify(timeoutMs);
    const accept = o.acceptFirmware ?? DEFAULT_ACCEPT_FIRMWARE;
    if (!accept.test(hello.firmware)) {
      fail('UNKNOWN_FIRMWARE', `${o.port}: firmware "${hello.firmware}" (model "${hello.model}") is not accepted by this station (${String(accept)})`);
    }
    const model = o.model ?? (hello.model === '' ? undefined : hello.model);
    a.record = await o.registry.update(a.record.id, { model: model ?? '', firmware: hello.firmware });

    await step('existing');
    const replacing = await existingIdentity(o, a, hello);

    await step('registry');
    const holder = await o.registry.activeBySerial(o.serial);
    if (holder !== undefined && holder.id !== replacing?.id) serialInUse(o.serial, holder);
    if (replacing !== undefined) {
      // Revoke before keygen, so the pack's old certificate and the new one are never active together.
      await revokeCertificate(o.ca, o.registry, replacing, 'superseded', `re-provisioned with --force (attempt ${a.record.id})`);
    }

    await step('keygen');
    const alg = o.alg ?? 'ES256';
    const coseAlg = alg === 'Ed25519' ? -8 : -7;
    const key = await session.call({ op: 'keygen', alg: coseAlg, ...(hello.alg === null ? {} : { force: true }) }, { timeoutMs: keygenTimeoutMs });
    if (key.alg !== coseAlg) fail('DEVICE_ERROR', `${o.port}: keygen for ${alg} returned a key of COSE alg ${key.alg}`);
    const readBack = await session.call({ op: 'pubkey' }, { timeoutMs });
    if (readBack.alg !== coseAlg || toHex(readBack.publicKey) !== toHex(key.publicKey)) {
      fail('DEVICE_ERROR', `${o.port}: pubkey does not return the key keygen just reported`);
    }
    let publicKey: PublicKey;
    try {
      publicKey = importPublicKey(alg, key.publicKey);
    } catch (e) {
      fail('DEVICE_ERROR', `${o.port}: the pack reported an invalid ${alg} public key (${isProtocolError(e) ? e.code : 'unreadable'})`, e);
    }
    const fingerprint = keyFingerprint(publicKey);
    a.fingerprint = fingerprint;
    a.record = await o.registry.update(a.record.id, { alg, keyFingerprint: fingerprint });
    const sameKey = await o.registry.activeByKey(fingerprint);
    if (sameKey !== undefined) keyInUse(fingerprint, sameKey);

    await step('prove');
    const challenge = new Uint8Array(randomBytes(32));
    const proof = await session.call({ op: 'prove', challenge }, { timeoutMs });
    if (!verifySignature(publicKey, popMessage(challenge, key.publicKey), proof.signature)) {
      fail('POP_FAILED', `${o.port}: the proof-of-possession signature does not verify with the ${alg} key the pack reported (key ${shortFingerprint(fingerprint)}); set the pack aside`);
    }

    await step('issue');
    const issued = await oneClaimAtATime(o.registry, async () => {
      const s = await o.registry.activeBySerial(o.serial);
      if (s !== undefined) serialInUse(o.serial, s);
      const k = await o.registry.activeByKey(fingerprint);
      if (k !== undefined) keyInUse(fingerprint, k);
      const cert = await o.ca.issueDevice({ packSerial: o.serial, ...(model === undefined ? {} : { model }), publicKey: key.publicKey, alg });
      // Recorded active BEFORE it reaches the pack: a crash from here on is revoked by resolvePending.
      a.record = await o.registry.update(a.record.id, {
        certPem: toPem(cert.cert, 'CERTIFICATE'),
        certSerialHex: cert.serialHex,
        certSha256: toHex(cert.certSha256),
        certNotAfter: cert.notAfter.toISOString(),
        certStatus: 'active',
      });
      a.issued = cert;
      return cert;
    });

    await step('setchain');
    await session.call({ op: 'setchain', chain: issued.chain }, { timeoutMs });

    await step('selftest');
    const st = await session.call({ op: 'selftest' }, { timeoutMs });
    const trust = await o.ca.trustStore();
    const verdict = checkSelfTest(st.cose, issued.chain, trust, { serial: o.serial, firmware: hello.firmware, publicKey: key.publicKey }, now());
    if (!verdict.ok) fail('SELFTEST_FAILED', `${o.port}: self-test check "${verdict.check}" failed: ${verdict.reason}`);

    await step('record');
    const durationMs = Math.round(performance.now() - started);
    a.record = await o.registry.update(a.record.id, { result: 'PASS', finishedAt: now().toISOString(), durationMs });
    return {
      result: 'PASS',
      serial: o.serial,
      port: o.port,
      keyFingerprint: fingerprint,
      certSerialHex: issued.serialHex,
      label: `PASS  ${o.serial}  ${alg}  key ${shortFingerprint(fingerprint)}  cert ${issued.serialHex}`,
      durationMs,
      record: a.record,
      exitCode: 0,
    };
  } catch (e) {
    return await failAttempt(o, a, e, started, now);
  } finally {
    await session?.close();
  }
}

/** The label form of a key's fingerprint; a key that does not import (off the curve) says so. */
function fingerprintText(raw: Uint8Array): string {
  try {
    return shortFingerprint(keyFingerprint(raw));
  } catch {
    return 'unreadable';
  }
}

function serialInUse(serial: string, holder: AttemptRecord): never {
  const key = holder.keyFingerprint === undefined ? '' : ` (key ${shortFingerprint(holder.keyFingerprint)})`;
  fail('SERIAL_IN_USE', `pack serial ${serial} already has an active certificate${key}, issued ${holder.finishedAt ?? holder.startedAt} on ${holder.port}; use another serial or revoke that certificate first`);
}

function keyInUse(fingerprint: string, holder: AttemptRecord): never {
  fail('KEY_IN_USE', `the pack's public key ${shortFingerprint(fingerprint)} already belongs to pack ${holder.serial}'s active certificate: a cloned or replayed key; set the pack aside`);
}

/**
 * Step 3: a pack that holds a chain is already provisioned — unless the chain is from one of our own
 * attempts that failed (revoked or not PASS), which a retry simply replaces. With --force, returns
 * the record whose active certificate is to be superseded (undefined for a foreign certificate).
 */
async function existingIdentity(o: Located, a: Attempt, hello: HelloInfo): Promise<AttemptRecord | undefined> {
  const leaf = hello.chain[0];
  if (leaf === undefined) return undefined;
  const prev = await o.registry.byCertSha256(toHex(sha256(leaf)));
  if (prev !== undefined && prev.id !== a.record.id && (prev.certStatus === 'revoked' || prev.result !== 'PASS')) {
    if (prev.certStatus === 'active') {
      // A failed attempt whose revocation did not happen (station error at the time): do it now.
      await revokeCertificate(o.ca, o.registry, prev, 'cessationOfOperation', `attempt failed (${prev.code ?? 'station error'}); revoked on retry`);
    }
    return undefined;
  }
  const key = hello.publicKey === null ? 'no key' : `key ${fingerprintText(hello.publicKey)}`;
  if (o.force !== true) {
    fail('ALREADY_PROVISIONED', `${o.port}: the pack is already provisioned as "${hello.serial}" (${key}); re-provision with --force, which revokes its certificate`);
  }
  return prev?.certStatus === 'active' ? prev : undefined;
}

function asError(x: unknown): Error {
  return x instanceof Error ? x : new Error(`provisioning: unexpected throw of a ${typeof x}`);
}

/** The failure path: revoke an issued certificate, record FAIL, and return (pack failure) or rethrow. */
async function failAttempt(o: Located, a: Attempt, e: unknown, started: number, now: () => Date): Promise<AttemptOutcome> {
  const known = e instanceof ProvisioningError;
  const code = known && isPackFailure(e.code) ? e.code : undefined;
  // The outcome names the port; the reason need not repeat it.
  const message = (e instanceof Error ? e.message : String(e)).replace(/^provisioning: /, '');
  const reason = message.startsWith(`${o.port}: `) ? message.slice(o.port.length + 2) : message;
  let stationError: unknown = code === undefined ? e : undefined;
  if (a.issued !== undefined) {
    try {
      a.record = (await revokeCertificate(o.ca, o.registry, a.record, 'cessationOfOperation', `attempt failed: ${code ?? 'station error'}`)).record;
    } catch (revokeError) {
      stationError ??= revokeError;
    }
  }
  const durationMs = Math.round(performance.now() - started);
  try {
    a.record = await o.registry.update(a.record.id, {
      result: 'FAIL',
      ...(code === undefined ? {} : { code }),
      reason,
      step: a.step,
      finishedAt: now().toISOString(),
      durationMs,
    });
  } catch (recordError) {
    stationError ??= recordError;
  }
  if (stationError !== undefined) throw asError(stationError);
  const failure = code ?? 'DEVICE_ERROR';
  return {
    result: 'FAIL',
    code: failure,
    reason,
    step: a.step,
    serial: o.serial,
    port: o.port,
    ...(a.fingerprint === undefined ? {} : { keyFingerprint: a.fingerprint }),
    label: `FAIL ${o.serial} ${failure}: ${reason}`,
    durationMs,
    record: a.record,
    exitCode: EXIT_CODES[failure],
  };
}

/**
 * Crash leftovers: every PENDING attempt (the station stopped mid-attempt) gets its certificate
 * revoked, if one was issued, and is recorded FAIL "station stopped mid-attempt". Run on start,
 * before any new attempt. Returns the records it resolved. Throws REGISTRY / CA_CORRUPT.
 */
export async function resolvePending(ca: StationCa, registry: Registry, now: () => Date = () => new Date()): Promise<AttemptRecord[]> {
  const out: AttemptRecord[] = [];
  for (const r of await registry.pending()) {
    if (r.certStatus === 'active') await revokeCertificate(ca, registry, r, 'cessationOfOperation', 'station stopped mid-attempt');
    out.push(await registry.update(r.id, { result: 'FAIL', reason: 'station stopped mid-attempt', step: r.step ?? 'unknown', finishedAt: now().toISOString() }));
  }
  return out;
}
