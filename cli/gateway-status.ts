/**
 * How `packchain gateway status` prints a StatusSnapshot for a person on the shop floor: a summary
 * block (health, log, checkpoint, sync, ingest, MQTT) and tables of ports and devices and rejects
 * by reason. Times are relative to the gateway's own clock in the snapshot (`gateway.now`), so a
 * laptop with a wrong clock still shows "12 s ago" correctly. Device-supplied text (serials,
 * channel names, error strings) reaches the terminal with control characters replaced.
 */
import { healthOf, type HistogramSnapshot, type StatusSnapshot } from '../gateway/index.js';
import { table } from './provision-common.js';

const n = (x: number): string => Math.round(x).toLocaleString('en-US');

// eslint-disable-next-line no-control-regex -- the point is to strip control characters
const clean = (s: string): string => s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');

/** 1536 → "1.5 KiB" */
export function size(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i] ?? ''}`;
}

/** 4000 → "4s", 3 723 000 → "1h 2m" */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** Upper bound of the bucket holding quantile q, e.g. "≤ 5 ms"; "> 10 s" above the last bound. */
export function quantile(h: HistogramSnapshot, q: number): string {
  if (h.count === 0) return '-';
  const want = q * h.count;
  const i = h.counts.findIndex((c) => c >= want);
  const fmt = (s: number): string => (s < 1 ? `${+(s * 1000).toPrecision(3)} ms` : `${s} s`);
  if (i < 0) return `> ${fmt(h.bounds[h.bounds.length - 1] ?? 0)}`;
  return `≤ ${fmt(h.bounds[i] ?? 0)}`;
}

function syncLine(s: StatusSnapshot): string {
  const y = s.sync;
  const now = s.gateway.now;
  const parts = [
    clean(y.url ?? ''),
    `synced ${n(y.syncedSize)}, lag ${n(y.lagEntries)} entries (oldest ${duration(y.lagSeconds * 1000)})`,
    y.lastSyncAt === undefined ? 'no successful round yet' : `last success ${duration(now - y.lastSyncAt)} ago`,
  ];
  if (y.cosignedSize !== undefined) parts.push(`cosigned ${n(y.cosignedSize)}`);
  if ((y.consecutiveFailures ?? 0) > 0) {
    parts.push(`FAILING ×${n(y.consecutiveFailures ?? 0)}${y.nextAttemptAt === undefined ? '' : `, retry in ${duration(y.nextAttemptAt - now)}`}`);
  }
  if (y.lastError !== undefined) parts.push(`last error${y.lastErrorAt === undefined ? '' : ` (${duration(now - y.lastErrorAt)} ago)`}: ${clean(y.lastErrorCode ?? '')} ${clean(y.lastError)}`);
  return parts.join('  ');
}

function summary(s: StatusSnapshot): string[] {
  const now = s.gateway.now;
  const h = healthOf(s);
  const st = s.store;
  const lines = [
    `gateway     ${clean(s.gateway.name)} (${clean(s.gateway.origin)})  v${clean(s.gateway.version)}  pid ${s.gateway.pid}  up ${duration(now - s.gateway.startedAt)}  ${h.ok ? 'healthy' : `UNHEALTHY: ${h.reasons.map(clean).join('; ')}`}`,
    `log         ${n(st.size)} entries (first ${n(st.firstIndex)})  ${size(st.usageBytes)} of ${size(st.quotaBytes)} (${Math.round((100 * st.usageBytes) / Math.max(1, st.quotaBytes))}%)  commits ${n(st.commits)}${st.commitLatency === undefined ? '' : `  commit p50 ${quantile(st.commitLatency, 0.5)}, p99 ${quantile(st.commitLatency, 0.99)}`}${st.quotaRejects > 0 ? `  quota rejects ${n(st.quotaRejects)}` : ''}${st.ioErrors > 0 ? `  I/O errors ${n(st.ioErrors)}` : ''}`,
    `checkpoint  ${st.checkpoint === undefined ? 'none yet' : `${n(st.checkpoint.size)} entries, signed ${duration(now - st.checkpoint.signedAt)} ago`}`,
    `sync        ${s.sync.enabled ? syncLine(s) : `off (no upstream.url)  ${n(s.sync.lagEntries)} entries not synced`}`,
    `ingest      ${s.ingest.running ? '' : 'NOT RUNNING  '}stored ${n(s.ingest.stored)}  duplicates ${n(s.ingest.duplicates)}  in flight ${n(s.ingest.inFlight)}${s.ingest.inputHeld ? ' (input held)' : ''}  rejects ${n(s.ingest.quarantine.total)} (security ${n(s.ingest.quarantine.security)})  sessions ${s.ingest.sessions} (${s.ingest.verifiedSessions} verified)  verify workers ${s.ingest.verify.workers}, queue ${n(s.ingest.verify.queued)}`,
    `mqtt        ${s.mqtt.enabled ? `${s.mqtt.connected ? 'connected' : 'NOT CONNECTED'}  published ${n(s.mqtt.published)}  dropped ${n(Object.values(s.mqtt.dropped).reduce((a, b) => a + b, 0))}  packs ${s.mqtt.packs}${s.mqtt.lastError === undefined ? '' : `  last error: ${clean(s.mqtt.lastError)}`}` : 'off'}`,
  ];
  return lines;
}

function ports(s: StatusSnapshot): string {
  const now = s.gateway.now;
  const rows = s.transports.flatMap((t) =>
    t.endpoints.map((e) => [
      t.kind,
      clean(e.id),
      e.state,
      e.openSince === undefined ? (e.nextAttemptAt === undefined ? '-' : `retry in ${duration(e.nextAttemptAt - now)}`) : duration(now - e.openSince),
      n(e.connects),
      size(e.bytesIn),
      size(e.bytesOut),
      n(e.messagesIn),
      n(Object.values(e.rejects).reduce((a: number, b) => a + b, 0)),
      e.lastError === undefined ? '-' : clean(e.lastError).slice(0, 60),
    ]),
  );
  if (rows.length === 0) return 'no ports or devices configured or found\n';
  return table(['TRANSPORT', 'ENDPOINT', 'STATE', 'SINCE', 'CONNECTS', 'IN', 'OUT', 'MESSAGES', 'REJECTS', 'LAST ERROR'], rows);
}

function devices(s: StatusSnapshot): string {
  const now = s.gateway.now;
  const rows = [...s.ingest.devices]
    .sort((a, b) => a.serial.localeCompare(b.serial))
    .map((d) => [clean(d.serial), clean(d.channel), n(d.frames), d.rate.toFixed(2), `${duration(now - d.lastSeen)} ago`, String(d.lastCounter), n(d.missing), n(d.duplicates), n(d.rejects + d.replays)]);
  if (rows.length === 0) return 'no pack has sent a verified frame yet\n';
  return table(['SERIAL', 'CHANNEL', 'FRAMES', 'RATE/S', 'LAST SEEN', 'LAST COUNTER', 'MISSING', 'DUPLICATES', 'REJECTS'], rows);
}

function rejects(s: StatusSnapshot): string {
  const rows = Object.entries(s.ingest.quarantine.byCode)
    .sort((a, b) => b[1] - a[1])
    .map(([code, count]) => [clean(code), n(count)]);
  if (rows.length === 0) return 'none\n';
  return table(['CODE', 'COUNT'], rows);
}

/** The whole status text. */
export function formatStatus(s: StatusSnapshot): string {
  return [summary(s).join('\n'), '', 'PORTS AND DEVICES', ports(s), 'PACKS', devices(s), 'REJECTS BY REASON', rejects(s)].join('\n');
}
