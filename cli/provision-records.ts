/**
 * Text forms of registry records for `packchain provision list` and `show`: one table row per
 * attempt (time, serial, result, code, short key fingerprint, certificate serial and status, station,
 * operator), and per-serial histories with each certificate's subject, serial, validity and status
 * read from the stored PEM. A record whose stored certificate cannot be parsed is shown as such
 * rather than stopping the listing: the registry is data from disk.
 */
import { fromPem, parseCertificate } from '../protocol/index.js';
import { shortFingerprint, type AttemptRecord } from '../provisioning/index.js';
import { isoSeconds, table } from './provision-common.js';

export function printAttempts(records: readonly AttemptRecord[]): string {
  if (records.length === 0) return 'no attempts\n';
  return table(
    ['time', 'serial', 'result', 'code', 'key', 'cert serial', 'cert', 'station', 'operator'],
    records.map((r) => [
      isoSeconds(r.startedAt),
      r.serial,
      r.result,
      r.code ?? '-',
      r.keyFingerprint === undefined ? '-' : shortFingerprint(r.keyFingerprint),
      r.certSerialHex ?? '-',
      r.certStatus,
      r.station,
      r.operator,
    ]),
  );
}

function certText(r: AttemptRecord): string[] {
  if (r.certPem === undefined) return [];
  let cert: string[];
  try {
    const block = fromPem(r.certPem)[0];
    if (block === undefined) throw new Error('no PEM block');
    const info = parseCertificate(block.der);
    cert = [`  certificate  ${info.subject}`, `    serial     ${info.serial}`, `    valid      ${isoSeconds(info.notBefore)} to ${isoSeconds(info.notAfter)}`];
  } catch {
    cert = ['  certificate  (stored PEM unreadable)'];
  }
  let status: string = r.certStatus;
  if (r.certStatus === 'revoked') {
    status += ` at ${r.revokedAt === undefined ? '?' : isoSeconds(r.revokedAt)}, reason ${r.revocationReason ?? 'unspecified'}`;
    if (r.revocationNote !== undefined) status += ` (${r.revocationNote})`;
  }
  return [...cert, `    status     ${status}`];
}

export function printHistory(serial: string, records: readonly AttemptRecord[]): string {
  const lines = [`${serial}: ${records.length} attempt${records.length === 1 ? '' : 's'}`];
  records.forEach((r, i) => {
    const took = r.durationMs === undefined ? '' : `  ${(r.durationMs / 1000).toFixed(2)} s`;
    lines.push('', `#${i + 1}  ${isoSeconds(r.startedAt)}  ${r.result}${r.code === undefined ? '' : ` ${r.code}`}${took}`);
    if (r.reason !== undefined) lines.push(`  reason       ${r.reason}${r.step === undefined ? '' : ` (step ${r.step})`}`);
    lines.push(`  station      ${r.station}  operator ${r.operator}  port ${r.port}`);
    if (r.firmware !== undefined || r.model !== '') lines.push(`  device       model ${r.model}${r.firmware === undefined ? '' : `  firmware ${r.firmware}`}`);
    if (r.keyFingerprint !== undefined) lines.push(`  key          ${r.alg === undefined ? '' : `${r.alg} `}${r.keyFingerprint}`);
    lines.push(...certText(r));
  });
  return `${lines.join('\n')}\n`;
}
