/**
 * The service engineer's API (api.md, docs/ledger.md "Service-engineer API"), under /api/v1 with
 * `Authorization: Bearer <token>` (tokens from `packchain ledger token create`; the core stores
 * only their SHA-256 and compares in constant time): pack search, pack detail, one pack's history
 * across every gateway as JSON or RFC 4180 CSV (time range on receivedAt, field selection, paging by
 * frame counter), the offline proof bundle of one frame, the battery passport (ledger/passport.ts
 * over the core's passport frames) and the trust material a browser needs to verify a bundle
 * itself. Query strings are validated by query.ts (400 BAD_QUERY naming the parameter).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { historyCsv } from '../../protocol/index.js';
import { LedgerError } from '../errors.js';
import { buildPassport } from '../passport.js';
import type { HistoryRow } from '../types.js';
import { principals } from './gateway-routes.js';
import { fieldsParam, intParam, onlyParams, oneOfParam, prefixParam, serialParam, timeParam, type Query } from './query.js';
import type { LedgerService } from './service.js';

export interface ApiOptions {
  /** The trust bundle's text as loaded (protocol encodeTrustBundle format), current after a reload. */
  readonly trustBundle: () => string;
  /** ms since the epoch, for generatedAt of passports. */
  readonly now: () => number;
}

const TOKEN_RE = /^Bearer ([A-Za-z0-9_~+/.-]{16,256}=*)$/;

type Req = FastifyRequest<{ Params: Record<string, string>; Querystring: Query }>;

/** Registers the /api/v1 routes with the Bearer-token hook on `app` (an encapsulated context). */
export function registerApiRoutes(app: FastifyInstance, ledger: LedgerService, o: ApiOptions): void {
  app.addHook('onRequest', async (req: FastifyRequest) => {
    const m = TOKEN_RE.exec(typeof req.headers.authorization === 'string' ? req.headers.authorization : '');
    const name = m?.[1] === undefined ? undefined : await ledger.verifyToken(m[1]);
    if (name === undefined) {
      throw new LedgerError('UNAUTHORIZED', 'ledger: this route needs Authorization: Bearer <token> with a valid token (packchain ledger token create NAME)');
    }
    principals.set(req, `token:${name}`);
  });

  app.get('/api/v1/packs', async (req: Req) => {
    onlyParams(req.query, ['prefix', 'limit']);
    return { packs: await ledger.packs(prefixParam(req.query), intParam(req.query, 'limit', 1, 1000, 50)) };
  });

  app.get('/api/v1/packs/:serial', async (req: Req) => {
    onlyParams(req.query, []);
    const serial = serialParam(req.params['serial']);
    const p = await ledger.pack(serial);
    if (p === undefined) throw new LedgerError('PACK_NOT_FOUND', `ledger: no verified frame of pack ${serial}`);
    return p;
  });

  app.get('/api/v1/packs/:serial/history', async (req: Req, reply: FastifyReply) => {
    const q = req.query;
    onlyParams(q, ['since', 'until', 'fields', 'format', 'limit', 'after']);
    const serial = serialParam(req.params['serial']);
    const since = timeParam(q, 'since');
    const until = timeParam(q, 'until');
    if (since !== undefined && until !== undefined && until < since) throw new LedgerError('BAD_QUERY', 'ledger: query: until: expected a time at or after since');
    const fields = fieldsParam(q);
    const format = oneOfParam(q, 'format', ['json', 'csv'] as const, 'json');
    const limit = intParam(q, 'limit', 1, 100_000, 10_000);
    const after = intParam(q, 'after', -1, Number.MAX_SAFE_INTEGER);
    const r = await ledger.history(serial, { limit, ...(since === undefined ? {} : { since }), ...(until === undefined ? {} : { until }), ...(after === undefined ? {} : { after }) });
    if (format === 'csv') {
      if (r.next !== null) reply.header('x-next-after', String(r.next));
      return reply
        .type('text/csv; charset=utf-8; header=present')
        .header('content-disposition', `attachment; filename="${serial}-history.csv"`)
        .send(historyCsv<HistoryRow>(r.rows, fields));
    }
    const rows = q['fields'] === undefined ? r.rows : r.rows.map((row) => Object.fromEntries(fields.map((f) => [f, row[f]])));
    return { serial, rows, next: r.next };
  });

  app.get('/api/v1/packs/:serial/frames/:counter/proof', async (req: Req, reply: FastifyReply) => {
    onlyParams(req.query, []);
    const serial = serialParam(req.params['serial']);
    const counter = intParam({ counter: req.params['counter'] }, 'counter', 0, Number.MAX_SAFE_INTEGER) ?? 0;
    const bundle = await ledger.proofBundle(serial, counter);
    if (bundle === undefined) throw new LedgerError('FRAME_NOT_FOUND', `ledger: no verified frame ${counter} of pack ${serial} covered by a witnessed checkpoint`);
    return reply
      .type('text/plain; charset=utf-8')
      .header('content-disposition', `attachment; filename="${serial}-${counter}.proof"`)
      .send(bundle);
  });

  app.get('/api/v1/packs/:serial/passport', async (req: Req) => {
    onlyParams(req.query, []);
    const serial = serialParam(req.params['serial']);
    const frames = await ledger.passportFrames(serial);
    if (frames.length === 0) throw new LedgerError('PACK_NOT_FOUND', `ledger: no verified frame of pack ${serial}`);
    const cert = (await ledger.pack(serial))?.certificate ?? null;
    return buildPassport({
      serial,
      certificate: cert === null ? null : { subject: cert.subject, serial: cert.serial, fingerprint: cert.fingerprint },
      frames,
      generatedAt: o.now(),
    });
  });

  app.get('/api/v1/trust', async (req: Req) => {
    onlyParams(req.query, []);
    const t = await ledger.trustInfo();
    return { trustBundle: o.trustBundle(), witness: t.witness, gateways: t.gateways };
  });
}
