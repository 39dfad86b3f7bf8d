/**
 * The one place protocol/ loads @peculiar/x509 (docs/protocol.md §3). tsyringe inside the
 * library needs `reflect-metadata` evaluated first, and the library needs a WebCrypto provider; we
 * give it node:crypto's `webcrypto` once, here, so every identity-*.ts file that imports `x509`
 * from this module gets a configured library whatever order the importer's imports run in.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

// The library's `Crypto` type is the DOM one; node's webcrypto implements it (NOTES.md, X.509).
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509, webcrypto };
