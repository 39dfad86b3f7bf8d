import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, REDACTED } from './logger.js';

/** A destination collecting pino's JSON lines. */
function sink(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, lines: () => text.trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('createLogger', () => {
  it('writes one JSON object per event with the gateway name, an ISO time and the level', () => {
    const s = sink();
    const log = createLogger({ level: 'info', gateway: 'line-3-gw1', destination: s.stream });
    log.info({ port: '/dev/ttyUSB0' }, 'gateway: port open');
    log.debug('not at info');
    const [line, ...rest] = s.lines();
    expect(rest).toEqual([]);
    expect(line).toMatchObject({ level: 30, gateway: 'line-3-gw1', port: '/dev/ttyUSB0', msg: 'gateway: port open', pid: process.pid });
    expect(typeof line?.time).toBe('string');
    expect(Number.isNaN(Date.parse(String(line?.time)))).toBe(false);
  });

  it('redacts secrets by field name, at the top level and nested', () => {
    const s = sink();
    const log = createLogger({ level: 'trace', destination: s.stream });
    log.warn({ seed: 'c2VjcmV0', mqtt: { password: 'hunter2' }, a: { b: { signerKey: 'PRIVATE+KEY+x' } }, headers: { authorization: 'Bearer t' }, keyFile: '/etc/packchain/gateway.key' }, 'x');
    const line = s.lines()[0];
    expect(line).toMatchObject({ seed: REDACTED, mqtt: { password: REDACTED }, a: { b: { signerKey: REDACTED } }, headers: { authorization: REDACTED } });
    expect(line?.keyFile).toBe('/etc/packchain/gateway.key'); // a path is not a secret, and operators need it
    const raw = JSON.stringify(line);
    for (const secret of ['c2VjcmV0', 'hunter2', 'PRIVATE+KEY', 'Bearer']) expect(raw).not.toContain(secret);
  });

  it('level silent writes nothing', () => {
    const s = sink();
    createLogger({ level: 'silent', destination: s.stream }).fatal('x');
    expect(s.lines()).toEqual([]);
  });
});
