import { beforeAll, describe, expect, it } from 'vitest';
import {
  MAX_TRUST_BUNDLE_CHARS,
  MAX_TRUST_BUNDLE_LIST,
  TRUST_BUNDLE_FORMAT,
  decodeTrustBundle,
  encodeTrustBundle,
  fromPem,
  toPem,
  type TrustBundle,
} from './identity.js';
import { makeCrl, makeIntermediate, makeRoot } from './identity-testkit.js';
import { x509 } from './identity-x509.js';
import { codeOf } from './testing.js';


let bundle: TrustBundle;

beforeAll(async () => {
  const root = await makeRoot('Ed25519');
  const line = await makeIntermediate(root, 'ES256');
  bundle = { roots: [root.cert], intermediates: [line.cert], crls: [await makeCrl(root), await makeCrl(line)] };
});

describe('toPem', () => {
  it('writes RFC 7468 strict PEM: 64-character lines, LF, final newline', () => {
    const der = bundle.roots[0] ?? new Uint8Array();
    const pem = toPem(der, 'CERTIFICATE');
    const lines = pem.split('\n');
    expect(lines[0]).toBe('-----BEGIN CERTIFICATE-----');
    expect(lines.at(-2)).toBe('-----END CERTIFICATE-----');
    expect(lines.at(-1)).toBe('');
    expect(lines.slice(1, -3).every((l) => l.length === 64)).toBe(true);
    expect(pem).toBe(x509.PemConverter.encode(der, 'CERTIFICATE').replace(/\r\n/g, '\n').trimEnd() + '\n');
  });

  it('labels CRLs "X509 CRL" (OpenSSL 3.0 refuses "CRL")', () => {
    expect(toPem(Uint8Array.of(1), 'X509 CRL')).toBe('-----BEGIN X509 CRL-----\nAQ==\n-----END X509 CRL-----\n');
  });
});

describe('fromPem', () => {
  it('round-trips with toPem, several blocks, CRLF and explanatory text', () => {
    const [a, b] = [bundle.roots[0] ?? new Uint8Array(), bundle.crls[0] ?? new Uint8Array()];
    const text = `subject=CN=Root\r\n${toPem(a, 'CERTIFICATE').replace(/\n/g, '\r\n')}between\n${toPem(b, 'X509 CRL')}`;
    expect(fromPem(text)).toEqual([
      { label: 'CERTIFICATE', der: a },
      { label: 'X509 CRL', der: b },
    ]);
  });

  it('returns nothing for text without blocks', () => {
    expect(fromPem('hello\n')).toEqual([]);
  });

  describe('when a block is malformed', () => {
    const cases: [string, string][] = [
      ['missing END', '-----BEGIN CERTIFICATE-----\nAQ==\n'],
      ['mismatched END', '-----BEGIN CERTIFICATE-----\nAQ==\n-----END X509 CRL-----\n'],
      ['empty body', '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n'],
      ['bad base64 character', '-----BEGIN CERTIFICATE-----\nA*==\n-----END CERTIFICATE-----\n'],
      ['non-canonical base64', '-----BEGIN CERTIFICATE-----\nAR==\n-----END CERTIFICATE-----\n'],
      ['missing padding', '-----BEGIN CERTIFICATE-----\nAQ\n-----END CERTIFICATE-----\n'],
      ['RFC 1421 header', '-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\nAQ==\n-----END CERTIFICATE-----\n'],
      ['bad BEGIN line', '-----BEGIN certificate-----\nAQ==\n-----END certificate-----\n'],
    ];
    for (const [what, text] of cases) {
      it(`throws the caller's code for ${what}`, () => {
        expect(codeOf(() => fromPem(text))).toBe('CERT_PARSE');
        expect(codeOf(() => fromPem(text, 'CRL_PARSE'))).toBe('CRL_PARSE');
      });
    }
  });
});

describe('encodeTrustBundle / decodeTrustBundle', () => {
  it('round-trips a bundle byte for byte', () => {
    const text = encodeTrustBundle(bundle);
    expect(JSON.parse(text)).toMatchObject({ format: TRUST_BUNDLE_FORMAT });
    expect(decodeTrustBundle(text)).toEqual(bundle);
    expect(encodeTrustBundle(decodeTrustBundle(text))).toBe(text);
  });

  describe('when the file is malformed', () => {
    const valid = (): Record<string, unknown> => JSON.parse(encodeTrustBundle(bundle)) as Record<string, unknown>;
    const cases: [string, () => string][] = [
      ['not JSON', () => '{"format":'],
      ['a JSON array', () => '[]'],
      ['JSON null', () => 'null'],
      ['an unknown format', () => JSON.stringify({ ...valid(), format: 'packchain-trust/v2' })],
      ['a missing format', () => JSON.stringify({ ...valid(), format: undefined })],
      ['an unknown key', () => JSON.stringify({ ...valid(), extra: [] })],
      ['roots not an array', () => JSON.stringify({ ...valid(), roots: 'PEM' })],
      ['a missing list', () => JSON.stringify({ ...valid(), crls: undefined })],
      ['a non-string entry', () => JSON.stringify({ ...valid(), intermediates: [42] })],
      ['an entry that is not PEM', () => JSON.stringify({ ...valid(), roots: ['hello'] })],
      ['an entry with bad base64', () => JSON.stringify({ ...valid(), roots: ['-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n'] })],
      ['two blocks in one entry', () => JSON.stringify({ ...valid(), roots: [toPem(Uint8Array.of(1), 'CERTIFICATE').repeat(2)] })],
      ['a CRL labelled as a certificate', () => JSON.stringify({ ...valid(), crls: [toPem(Uint8Array.of(1), 'CERTIFICATE')] })],
      ['no root', () => JSON.stringify({ ...valid(), roots: [] })],
      ['too many entries', () => JSON.stringify({ ...valid(), intermediates: Array<string>(MAX_TRUST_BUNDLE_LIST + 1).fill(toPem(Uint8Array.of(1), 'CERTIFICATE')) })],
      ['more than 4 MiB', () => ' '.repeat(MAX_TRUST_BUNDLE_CHARS + 1)],
      ['deep nesting', () => '['.repeat(100_000)],
    ];
    for (const [what, make] of cases) {
      it(`throws TRUST_BUNDLE for ${what}`, () => {
        expect(codeOf(() => decodeTrustBundle(make()))).toBe('TRUST_BUNDLE');
      });
    }
    it('throws TRUST_BUNDLE for input that is not text', () => {
      expect(codeOf(() => decodeTrustBundle(42 as unknown as string))).toBe('TRUST_BUNDLE');
    });
  });

  it('refuses to encode a bundle the decoder would refuse', () => {
    expect(codeOf(() => encodeTrustBundle({ roots: [], intermediates: [], crls: [] }))).toBe('TRUST_BUNDLE');
  });
});
