/**
 * `packchain demo`: the main job on embedded defaults. Until the end-to-end issue wires hw-sim,
 * the station, the gateway and the ledger together, it runs the whole protocol path in one process
 * with real keys and real bytes: a factory CA certifies packs after proof of possession, packs
 * stream signed frames as serial lines through a noisy line, a gateway-side pipeline verifies
 * chain and signature, logs leaves in a Merkle tree and signs a checkpoint, a witness cosigns it,
 * and a proof bundle is written, verified offline and shown to fail when tampered with.
 */
import { webcrypto } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import type { Command } from 'commander';
import {
  addSignatures,
  buildProofBundle,
  coseKid,
  createCosigner,
  createCrl,
  createDeviceCert,
  createIntermediateCa,
  createNoteSigner,
  createRootCa,
  decodeFrame,
  encodeFrame,
  encodeLeaf,
  encodeLine,
  encodeTrustBundle,
  formatVerifierKey,
  gatewayOrigin,
  importPublicKey,
  isProtocolError,
  keyFingerprint,
  LineDecoder,
  MemoryHashStore,
  popMessage,
  signCheckpoint,
  signSign1,
  spkiOf,
  treeHash,
  TrustStore,
  verifierOf,
  verifyProofBundle,
  verifySign1,
  verifySignature,
  type Message,
  type SignatureAlg,
  type SohFrame,
  type VerifiedDevice,
} from '../protocol/index.js';

interface Pack {
  serial: string;
  alg: SignatureAlg;
  secretKey: Uint8Array;
  publicKey: Uint8Array;
  chain: Uint8Array[];
}

const say = (s = ''): void => void process.stdout.write(`${s}\n`);

/** A pack's reading at step i: a slow discharge with a little cell spread. */
function reading(p: Pack, i: number, t0: number): SohFrame {
  const soc = 950 - i * 7;
  const cell = 3300 + Math.round(soc / 10);
  return {
    v: 1,
    serial: p.serial,
    counter: i,
    time: t0 + i * 60_000,
    soc,
    soh: 987,
    voltage: cell * 16,
    current: -25_000,
    tempMin: 241 + i,
    tempMax: 255 + i,
    cycles: 118,
    cells: Array.from({ length: 16 }, (_, k) => cell + ((k * 7) % 5)),
    remainingCapacity: Math.round(soc * 98.7),
    resistance: 16_800,
    alarms: 0,
    firmware: '1.0.0',
  };
}

async function runDemo(outDir: string): Promise<void> {
  const t0 = Date.parse('2026-11-25T08:00:00Z');
  mkdirSync(outDir, { recursive: true });
  say('packchain demo — protocol path (the full fleet demo arrives with the end-to-end issue)\n');

  // Factory: root CA and line CA. Private keys stay in WebCrypto; nothing is printed.
  const rootKeys = (await webcrypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const lineKeys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  const validity = { notBefore: new Date(t0 - 86_400_000), notAfter: new Date(t0 + 20 * 365 * 86_400_000) };
  const root = await createRootCa({ name: 'Demo Factory Root', org: 'Demo Packs', keys: rootKeys, alg: 'Ed25519', ...validity });
  const rootIssuer = { cert: root, privateKey: rootKeys.privateKey };
  const line = await createIntermediateCa({ name: 'Demo Line 1', org: 'Demo Packs', keys: lineKeys, alg: 'ES256', ...validity, issuer: rootIssuer });
  const lineIssuer = { cert: line, privateKey: lineKeys.privateKey };
  say('factory   root CA (Ed25519) and line CA (P-256) created');

  // Station: each pack generates its key on-device, proves possession, gets a certificate.
  const packs: Pack[] = [];
  for (const [serial, alg] of [['PACK-0001', 'Ed25519'], ['PACK-0002', 'ES256'], ['PACK-0003', 'Ed25519']] as const) {
    const secretKey = alg === 'Ed25519' ? ed25519.utils.randomSecretKey() : p256.utils.randomSecretKey();
    const publicKey = alg === 'Ed25519' ? ed25519.getPublicKey(secretKey) : p256.getPublicKey(secretKey, false);
    const challenge = webcrypto.getRandomValues(new Uint8Array(32));
    const proof = alg === 'Ed25519' ? ed25519.sign(popMessage(challenge, publicKey), secretKey) : p256.sign(popMessage(challenge, publicKey), secretKey);
    const pass = verifySignature(importPublicKey(alg, publicKey), popMessage(challenge, publicKey), proof);
    const cert = await createDeviceCert({ packSerial: serial, model: 'DEMO-16S', org: 'Demo Packs', devicePublicKey: publicKey, deviceAlg: alg, issuer: lineIssuer, ...validity });
    packs.push({ serial, alg, secretKey, publicKey, chain: [cert, line] });
    say(`station   ${pass ? 'PASS' : 'FAIL'}  ${serial}  ${alg.padEnd(7)}  key ${keyFingerprint(publicKey).slice(0, 16)}…`);
  }
  const crl = await createCrl({ issuer: lineIssuer, crlNumber: 1, thisUpdate: new Date(t0 - 3_600_000), nextUpdate: new Date(t0 + 30 * 86_400_000), revoked: [] });
  const rootCrl = await createCrl({ issuer: rootIssuer, crlNumber: 1, thisUpdate: new Date(t0 - 3_600_000), nextUpdate: new Date(t0 + 30 * 86_400_000), revoked: [] });
  const bundleTrust = { roots: [root], intermediates: [line], crls: [crl, rootCrl] };
  writeFileSync(join(outDir, 'trust.json'), encodeTrustBundle(bundleTrust));

  // Packs: hello with chain, then 20 signed frames each, as serial lines on a line with noise.
  const wire: Uint8Array[] = [];
  for (const p of packs) {
    const hello: Message = { type: 'hello', version: 1, serial: p.serial, model: 'DEMO-16S', firmware: '1.0.0', alg: p.alg === 'Ed25519' ? -8 : -7, publicKey: p.alg === 'ES256' ? p256.Point.fromBytes(p.publicKey).toBytes(false) : p.publicKey, chain: p.chain, nextCounter: 0, unacked: 0 };
    wire.push(encodeLine(hello));
    const kid = coseKid(spkiOf(importPublicKey(p.alg, p.publicKey)));
    for (let i = 0; i < 20; i++) {
      wire.push(encodeLine({ type: 'frame', cose: signSign1({ alg: p.alg, kid, payload: encodeFrame(reading(p, i, t0)), secretKey: p.secretKey }) }));
      if (i % 7 === 3) wire.push(new TextEncoder().encode('#~ line noise ~#\r\n'));
    }
  }

  // Gateway: decode, verify chain and signature, log durable leaves, sign a checkpoint.
  const trust = await TrustStore.create(bundleTrust);
  const store = new MemoryHashStore();
  const leaves: Uint8Array[] = [];
  const history: { index: number; frame: SohFrame; receivedAt: number }[] = [];
  const devices = new Map<string, { device: VerifiedDevice; chain: Uint8Array[] }>();
  let current: { device: VerifiedDevice; chain: Uint8Array[] } | undefined;
  const decoder = new LineDecoder();
  const rejects = new Map<string, number>();
  let received = t0 + 2000;
  for (const ev of [...wire.flatMap((chunk) => decoder.push(chunk)), ...decoder.flush()]) {
    if (ev.kind === 'error') {
      rejects.set(ev.error.code, (rejects.get(ev.error.code) ?? 0) + 1);
      continue;
    }
    const m = ev.message;
    if (m.type === 'hello') {
      current = { device: trust.verifyChain(m.chain, new Date(received)), chain: m.chain };
      devices.set(current.device.packSerial, current);
    } else if (m.type === 'frame' && current) {
      const frame = decodeFrame(verifySign1(m.cose, { publicKey: current.device.publicKey, kid: current.device.kid }).payload);
      received += 1000;
      const leaf = encodeLeaf({ receivedAt: received, source: 'serial:/dev/ttyUSB0', certSha256: current.device.certSha256, frame: m.cose });
      history.push({ index: store.append(leaf), frame, receivedAt: received });
      leaves.push(leaf);
    }
  }
  const origin = gatewayOrigin('demo-gateway');
  const gatewaySigner = createNoteSigner(origin, webcrypto.getRandomValues(new Uint8Array(32)));
  const witness = createCosigner('ledger.demo', webcrypto.getRandomValues(new Uint8Array(32)), () => Math.floor(received / 1000) + 5);
  const checkpoint = addSignatures(signCheckpoint({ origin, size: store.size, rootHash: treeHash(store.size, store) }, [gatewaySigner]), [witness]);
  say(`gateway   ${store.size} frames verified and logged; skipped noise: ${[...rejects].map(([c, n]) => `${c}×${n}`).join(', ') || 'none'}`);
  say(`checkpoint\n${checkpoint.replace(/^/gm, '          ')}`);

  // History for one pack, as a service engineer sees it.
  say('history   PACK-0002 (first 6 frames)');
  say('          index  counter  device time           SoC %   SoH %   pack V    I A    T °C       cells mV');
  for (const h of history.filter((x) => x.frame.serial === 'PACK-0002').slice(0, 6)) {
    const f = h.frame;
    say(
      `          ${String(h.index).padStart(5)}  ${String(f.counter).padStart(7)}  ${new Date(f.time).toISOString().slice(0, 19)}  ${(f.soc / 10).toFixed(1).padStart(5)}  ${(f.soh / 10).toFixed(1).padStart(6)}  ${(f.voltage / 1000).toFixed(2).padStart(6)}  ${(f.current / 1000).toFixed(1).padStart(6)}  ${(f.tempMin / 10).toFixed(1)}–${(f.tempMax / 10).toFixed(1)}  ${Math.min(...f.cells)}–${Math.max(...f.cells)}`,
    );
  }

  // Proof bundle for one frame, verified offline with only the trust material.
  const pick = history.find((h) => h.frame.serial === 'PACK-0002' && h.frame.counter === 5);
  const pack = devices.get('PACK-0002');
  if (!pick || !pack) throw new Error('demo: PACK-0002 frame 5 was not logged');
  const bundle = buildProofBundle({ index: pick.index, leaf: leaves[pick.index] ?? new Uint8Array(), chain: pack.chain, checkpoint, reader: store });
  const bundlePath = join(outDir, 'PACK-0002-5.tlog-proof');
  writeFileSync(bundlePath, bundle);
  const gatewayKey = formatVerifierKey(origin, gatewaySigner.publicKey);
  const witnessKey = formatVerifierKey('ledger.demo', witness.publicKey, 'cosignature');
  writeFileSync(join(outDir, 'keys.txt'), `gateway ${gatewayKey}\nwitness ${witnessKey}\n`);
  const offline = { trust: await TrustStore.create(bundleTrust), logs: [verifierOf(gatewaySigner)], witnesses: [verifierOf(witness)], requiredWitnesses: 1 };
  const v = verifyProofBundle(bundle, offline);
  say(`proof     ${bundlePath}`);
  say(`          OK: ${v.device.packSerial} frame ${v.frame.counter} (SoC ${v.frame.soc / 10} %) is leaf ${v.index} of ${v.origin} size ${v.treeSize}, witnessed by ${v.witnesses.map((w) => w.name).join(', ')}`);
  const tampered = bundle.replace(/\nindex (\d+)\n/, (_m, n: string) => `\nindex ${Number(n) + 1}\n`);
  try {
    verifyProofBundle(tampered, offline);
    say('          tampered bundle: ACCEPTED (this is a bug)');
    process.exitCode = 1;
  } catch (e) {
    say(`          tampered bundle (index changed): rejected, ${isProtocolError(e) ? e.code : String(e)}`);
  }
  say(`\nartefacts in ${outDir}: trust.json (trust bundle), keys.txt (verifier keys), PACK-0002-5.tlog-proof`);
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the packchain demo on embedded defaults')
    .option('--out <dir>', 'where to write the demo artefacts', 'packchain-demo')
    .action(async (opts: { out: string }) => {
      await runDemo(resolve(opts.out));
    });
}
