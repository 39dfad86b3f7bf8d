/**
 * Property tests: every identity parser and verifier fed random or mutated input returns a value
 * or throws ProtocolError — never another exception, never a hang (docs/protocol.md §3.9).
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { ProtocolError } from './errors.js';
import { decodeTrustBundle, encodeTrustBundle, fromPem, parseCertificate, parseCrl, TrustStore } from './identity.js';
import { readBasicConstraints, readCertificateFields, readCrlIssuer, readKeyUsage, replaceCrlTbs, stripEmptyCrlEntryExtensions } from './identity-der.js';
import { NOW, issueDevice, makeCrl, makeIntermediate, makeRoot, serialOf } from './identity-testkit.js';

/** Runs `f`; a result or a ProtocolError is fine, anything else fails the property. */
function onlyProtocolErrors(f: () => unknown): boolean {
  try {
    f();
    return true;
  } catch (e) {
    if (e instanceof ProtocolError) return true;
    throw e;
  }
}

/** A byte string derived from `base` by overwriting, truncating, extending or splicing. */
const mutated = (base: Uint8Array): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    fc.array(fc.tuple(fc.nat({ max: base.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }).map((edits) => {
      const out = Uint8Array.from(base);
      for (const [i, v] of edits) out[i] = v;
      return out;
    }),
    fc.nat({ max: base.length - 1 }).map((n) => base.subarray(0, n)),
    fc.uint8Array({ minLength: 1, maxLength: 32 }).map((tail) => Uint8Array.from([...base, ...tail])),
    fc.tuple(fc.nat({ max: base.length - 1 }), fc.uint8Array({ maxLength: 16 })).map(([at, ins]) => Uint8Array.from([...base.subarray(0, at), ...ins, ...base.subarray(at)])),
  );

let device: Uint8Array;
let line: Uint8Array;
let crl: Uint8Array;
let bundleText: string;
let store: TrustStore;

beforeAll(async () => {
  const root = await makeRoot('ES256');
  const l = await makeIntermediate(root, 'Ed25519');
  const d = await issueDevice(l, 'ES256');
  const other = await issueDevice(l, 'Ed25519', 'PACK-0002');
  device = d.cert;
  line = l.cert;
  crl = await makeCrl(l, [{ serialHex: serialOf(other.cert), date: NOW }]);
  const bundle = { roots: [root.cert], intermediates: [l.cert], crls: [await makeCrl(root), crl] };
  bundleText = encodeTrustBundle(bundle);
  store = await TrustStore.create(bundle);
  expect(store.verifyChain([device, line], NOW).packSerial).toBe('PACK-0001');
});

const RUNS = { numRuns: 250 };

describe('parseCertificate', () => {
  it('throws only ProtocolError for random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1500 }), (b) => onlyProtocolErrors(() => parseCertificate(b))), RUNS);
  });

  it('throws only ProtocolError for mutated certificates', () => {
    fc.assert(fc.property(mutated(device), (b) => onlyProtocolErrors(() => parseCertificate(b))), RUNS);
  });
});

describe('identity-der readers', () => {
  it('throw only ProtocolError for random and mutated bytes', () => {
    const readers = [readCertificateFields, readCrlIssuer, readBasicConstraints, readKeyUsage, stripEmptyCrlEntryExtensions, (b: Uint8Array) => replaceCrlTbs(b, b)];
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 600 }), mutated(device), mutated(crl)), (b) => readers.every((r) => onlyProtocolErrors(() => r(b)))),
      RUNS,
    );
  });
});

describe('parseCrl', () => {
  it('throws only ProtocolError for random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1500 }), (b) => onlyProtocolErrors(() => parseCrl(b))), RUNS);
  });

  it('throws only ProtocolError for mutated CRLs', () => {
    fc.assert(fc.property(mutated(crl), (b) => onlyProtocolErrors(() => parseCrl(b))), RUNS);
  });
});

describe('TrustStore.verifyChain', () => {
  it('throws only ProtocolError for mutated device certificates and intermediates', () => {
    fc.assert(
      fc.property(mutated(device), mutated(line), fc.boolean(), (d, l, which) =>
        onlyProtocolErrors(() => store.verifyChain(which ? [d, line] : [device, l], NOW)),
      ),
      RUNS,
    );
  });

  it('never accepts a mutated device certificate that differs in signed bytes', () => {
    fc.assert(
      fc.property(mutated(device), (d) => {
        try {
          const r = store.verifyChain([d, line], NOW);
          // Accepted only if the bytes still parse to the same signed certificate.
          return r.packSerial === 'PACK-0001' && Buffer.from(parseCertificate(d).der).equals(Buffer.from(device));
        } catch (e) {
          if (e instanceof ProtocolError) return true;
          throw e;
        }
      }),
      RUNS,
    );
  });

  it('throws only ProtocolError for chains of random byte strings', () => {
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 6 }), (c) => onlyProtocolErrors(() => store.verifyChain(c, NOW))), RUNS);
  });
});

describe('decodeTrustBundle and fromPem', () => {
  it('throw only ProtocolError for random text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (s) => onlyProtocolErrors(() => decodeTrustBundle(s)) && onlyProtocolErrors(() => fromPem(s))),
      RUNS,
    );
  });

  it('throws only ProtocolError for random JSON values', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => onlyProtocolErrors(() => decodeTrustBundle(JSON.stringify(v)))), RUNS);
  });

  it('throw only ProtocolError for mutated bundle text', () => {
    const edits = fc.array(fc.tuple(fc.nat({ max: 100_000 }), fc.constantFrom('"', '-', '\n', '=', 'A', ' ', '[', '}', '\\', 'é')), { minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(edits, (es) => {
        const chars = bundleText.split(''); // the bundle text is ASCII
        for (const [i, c] of es) chars[i % chars.length] = c;
        const text = chars.join('');
        return onlyProtocolErrors(() => decodeTrustBundle(text)) && onlyProtocolErrors(() => fromPem(text));
      }),
      RUNS,
    );
  });
});

describe('TrustStore.create', () => {
  it('rejects mutated bundles only with ProtocolError', async () => {
    await fc.assert(
      fc.asyncProperty(mutated(crl), mutated(line), async (c, l) => {
        try {
          const b = decodeTrustBundle(bundleText);
          await TrustStore.create({ roots: b.roots, intermediates: [l], crls: [c] });
          return true;
        } catch (e) {
          if (e instanceof ProtocolError) return true;
          throw e;
        }
      }),
      { numRuns: 100 },
    );
  });
});
