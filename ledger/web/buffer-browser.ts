/**
 * Browser stand-in for the one use protocol/ makes of Node's global `Buffer` on the verify path:
 * `Buffer.from(bytes)` to hand DER to node:crypto (identity-cert.ts). The esbuild build injects this
 * for the global name `Buffer` (assets.ts); node-crypto-browser.ts accepts plain Uint8Arrays.
 */
export const Buffer = {
  from(bytes: Uint8Array): Uint8Array {
    return Uint8Array.from(bytes);
  },
};
