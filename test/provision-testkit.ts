/**
 * Shared by the provisioning integration tests: what a gateway does with a freshly provisioned pack
 * on a real pty — ask for its hello, verify the chain it presents against a trust bundle (as
 * `provision export` writes it) with protocol's TrustStore, then verify the frames it streams.
 */
import { SerialPort } from 'serialport';
import { expect } from 'vitest';
import { decodeFrame, decodeTrustBundle, encodeLine, LineDecoder, requestMessage, TrustStore, verifySign1, type Message } from '../protocol/index.js';

/** What a gateway does with a pack: hello, verify its chain against the trust bundle, verify its frames. */
export async function gatewayView(path: string, bundleText: string, frames: number): Promise<{ serial: string; counters: number[] }> {
  const trust = await TrustStore.create(decodeTrustBundle(bundleText));
  const port = new SerialPort({ path, baudRate: 115_200, autoOpen: false });
  await new Promise<void>((ok, fail) => {
    port.open((e) => {
      if (e) fail(e);
      else ok();
    });
  });
  const got: Message[] = [];
  const decoder = new LineDecoder();
  port.on('data', (c: Buffer) => {
    for (const ev of decoder.push(c)) if (ev.kind === 'message') got.push(ev.message);
  });
  try {
    port.write(Buffer.from(encodeLine(requestMessage(1, { op: 'hello' }))));
    const deadline = Date.now() + 20_000;
    const frameMsgs = () => got.flatMap((m) => (m.type === 'frame' ? [m] : []));
    while (frameMsgs().length < frames && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const hello = got.find((m) => m.type === 'response' && m.id === 1);
    if (hello?.type !== 'response' || typeof hello.result === 'string') throw new Error('no hello response');
    const body = hello.result.get(1) as Map<number, unknown>;
    const chain = body.get(7) as Uint8Array[];
    const device = trust.verifyChain(chain, new Date());
    const counters = frameMsgs().map((m) => {
      const f = decodeFrame(verifySign1(m.cose, { publicKey: device.publicKey, kid: device.kid }).payload);
      expect(f.serial).toBe(device.packSerial);
      return f.counter;
    });
    return { serial: device.packSerial, counters };
  } finally {
    await new Promise<void>((r) => {
      port.close(() => {
        r();
      });
    });
  }
}

