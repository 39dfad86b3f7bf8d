/**
 * The two gateway routes of the sync protocol (docs/protocol.md §10, docs/ledger.md "Gateway
 * routes"): GET /v1/gateway/state and POST /v1/gateway/upload. Every request is authenticated by
 * the gateway's own log key over method, path (as received, query included) and the raw body
 * bytes — so the upload body is taken as bytes (content type application/cbor, at most protocol
 * MAX_UPLOAD_BYTES, checked by fastify before reading further) and never re-encoded before the
 * signature check. The gateway identity comes only from that signature: an upload for another
 * gateway's log is ORIGIN_MISMATCH in the core. Answers are JSON (protocol syncStateJson /
 * uploadResultJson).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { MAX_UPLOAD_BYTES, syncStateJson, uploadResultJson } from '../../protocol/index.js';
import { LedgerError } from '../errors.js';
import type { GatewayRecord } from '../types.js';
import type { LedgerService } from './service.js';

export const CBOR_TYPE = 'application/cbor';
const EMPTY = new Uint8Array(0);

/** Who made a request, for the request log (a gateway origin or a token name; never the secret). */
export const principals = new WeakMap<FastifyRequest, string>();

function header(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  return typeof h === 'string' ? h : undefined;
}

async function authenticate(ledger: LedgerService, req: FastifyRequest, body: Uint8Array): Promise<GatewayRecord> {
  const gw = await ledger.authenticateGateway(header(req), req.method, req.url, body);
  principals.set(req, gw.origin);
  return gw;
}

export function registerGatewayRoutes(app: FastifyInstance, ledger: LedgerService): void {
  app.addContentTypeParser(CBOR_TYPE, { parseAs: 'buffer', bodyLimit: MAX_UPLOAD_BYTES }, (_req, body, done) => {
    done(null, body);
  });

  app.get('/v1/gateway/state', async (req) => {
    const gw = await authenticate(ledger, req, EMPTY);
    return syncStateJson(await ledger.state(gw));
  });

  app.post('/v1/gateway/upload', { bodyLimit: MAX_UPLOAD_BYTES }, async (req) => {
    const raw = req.body;
    if (!(raw instanceof Uint8Array)) throw new LedgerError('UNSUPPORTED_MEDIA_TYPE', `ledger: upload: expected a body of content type ${CBOR_TYPE}`);
    const body = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
    const gw = await authenticate(ledger, req, body);
    return uploadResultJson(await ledger.upload(gw, body));
  });
}
