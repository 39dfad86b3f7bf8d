/**
 * Test-only BMU peers for the station's tests (not exported from provisioning/index.ts): a socat
 * pty pair and a small scriptable pack on its device end that speaks the serial protocol
 * (docs/protocol.md §4, §5) with protocol's own codecs and @noble signing, as a real BMU would. It
 * exists for what hw-sim's faithful firmware never does on purpose: answer `prove` with a bad
 * signature, sign its self-test frame with another key or another serial, hold a fixed (cloned) key
 * pair, stay silent, or answer late. It is a device on a real pty driven through the real serialport
 * library by the station — a peer, not a mock of a library. Uses only protocol/ (layering).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SerialPort } from 'serialport';
import {
  encodeFrame,
  encodeLine,
  errorResponse,
  isRequestOp,
  keyId,
  LineDecoder,
  okResponse,
  parseCertificate,
  parseRequest,
  popMessage,
  publicKeyFromSecretPortable,
  signPortable,
  signSign1,
  type DeviceKeyAlg,
  type HelloInfo,
  type Message,
  type RequestMessage,
  type SignatureAlg,
  type SohFrame,
} from '../protocol/index.js';

export interface TestPty {
  readonly hostPath: string;
  readonly devicePath: string;
  /** Unplugs: kills socat and waits for it to exit (both links vanish). Idempotent. */
  stop(): Promise<void>;
}

/** A socat pty pair `<dir>/<name>.host` ↔ `<dir>/<name>.dev` (NOTES.md "serialport 13 over a pty"). */
export async function startTestPty(dir: string, name: string): Promise<TestPty> {
  const hostPath = join(dir, `${name}.host`);
  const devicePath = join(dir, `${name}.dev`);
  const child: ChildProcess = spawn('socat', [`pty,raw,echo=0,link=${hostPath}`, `pty,raw,echo=0,link=${devicePath}`], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => { r(); }));
  const present = async (p: string): Promise<boolean> => stat(p).then(() => true, () => false);
  const deadline = Date.now() + 5000;
  while (!((await present(hostPath)) && (await present(devicePath)))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`test pty ${name}: socat did not start`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  let stopping: Promise<void> | undefined;
  return {
    hostPath,
    devicePath,
    stop: () => (stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    })()),
  };
}

/** What a request gets instead of the default answer: nothing, or these messages. */
export type FakeReply = 'default' | 'ignore' | Message[];

export interface FakePackOptions {
  readonly model?: string;
  readonly firmware?: string;
  /** keygen always yields this key pair (a cloned key); default: a fresh random key. */
  readonly fixedSecretKey?: Uint8Array;
  /** prove answers with a signature with one bit flipped (mutable: a test can "repair" the pack). */
  badPop?: boolean;
  /** The self-test frame is signed with another key, carries another serial, or implausible readings (mutable). */
  selftest?: 'good' | 'wrong-key' | 'wrong-serial' | 'dead-cell';
  /** Called for every request; anything but 'default' replaces the answer. */
  readonly onRequest?: (req: RequestMessage, pack: FakePack) => FakeReply;
}

/** A scripted BMU on the device end of a pty. Every request op is recorded in `ops`. */
export class FakePack {
  readonly ops: string[] = [];
  readonly acks: Message[] = [];
  alg: SignatureAlg | null = null;
  secretKey: Uint8Array | null = null;
  publicKey: Uint8Array | null = null;
  chain: Uint8Array[] = [];
  serial = '';
  private counter = 0;
  private readonly decoder = new LineDecoder();

  private constructor(
    private readonly port: SerialPort,
    readonly opts: FakePackOptions,
  ) {
    port.on('data', (chunk: Buffer) => {
      for (const ev of this.decoder.push(chunk)) {
        if (ev.kind !== 'message') continue;
        if (ev.message.type === 'ack') this.acks.push(ev.message);
        if (ev.message.type === 'request') this.onRequest(ev.message);
      }
    });
    port.on('error', () => undefined);
  }

  /** Opens `devicePath` (the pty's device end) and starts answering. */
  static async attach(devicePath: string, opts: FakePackOptions = {}): Promise<FakePack> {
    const port = new SerialPort({ path: devicePath, baudRate: 115_200, autoOpen: false });
    await new Promise<void>((ok, fail) => {
      port.open((e) => {
        if (e) fail(e);
        else ok();
      });
    });
    return new FakePack(port, opts);
  }

  hello(): HelloInfo {
    return {
      version: 1,
      serial: this.serial,
      model: this.opts.model ?? 'FAKE-16S',
      firmware: this.opts.firmware ?? '1.2.3',
      alg: this.alg === null ? null : this.alg === 'Ed25519' ? -8 : -7,
      publicKey: this.publicKey,
      chain: [...this.chain],
      nextCounter: this.counter,
      unacked: 0,
    };
  }

  /** Puts one message on the wire. */
  send(msg: Message): void {
    this.port.write(Buffer.from(encodeLine(msg)));
  }

  /** Puts raw bytes on the wire (noise, a boot banner). */
  sendRaw(bytes: string | Uint8Array): void {
    this.port.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes));
  }

  /** A signed frame as this pack would stream it (requires a key and a serial). */
  frame(over: Partial<SohFrame> = {}, secretKey = this.secretKey): Uint8Array {
    const alg = this.alg;
    const pub = this.publicKey;
    if (alg === null || pub === null || secretKey === null) throw new Error('fake pack: no key');
    const payload = encodeFrame({
      v: 1, serial: this.serial || 'UNSET', counter: this.counter++, time: Date.now(), soc: 640, soh: 1000, voltage: 16 * 3300,
      current: 0, tempMin: 221, tempMax: 236, cycles: 0, cells: Array.from({ length: 16 }, () => 3300), remainingCapacity: 64_000,
      resistance: 16_000, alarms: 0, firmware: this.opts.firmware ?? '1.2.3', ...over,
    });
    return signSign1({ alg, kid: keyId(pub), payload, secretKey });
  }

  /** The answer a well-behaved pack gives (keys, PoP, chain storage, self-test frames). */
  defaultAnswer(req: RequestMessage): Message[] {
    const id = req.id;
    if (!isRequestOp(req.op)) return [errorResponse(id, 'UNKNOWN_OP', `unknown op ${req.op}`)];
    let call;
    try {
      call = parseRequest(req);
    } catch {
      return [errorResponse(id, 'BAD_ARGS', 'bad args')];
    }
    const cose = (alg: SignatureAlg): DeviceKeyAlg => (alg === 'Ed25519' ? -8 : -7);
    switch (call.op) {
      case 'hello':
        return [okResponse(id, { op: 'hello', hello: this.hello() })];
      case 'keygen': {
        if (this.alg !== null && call.force !== true) return [errorResponse(id, 'EXISTS', 'key exists')];
        const alg: SignatureAlg = call.alg === -8 ? 'Ed25519' : 'ES256';
        const sk = this.opts.fixedSecretKey ?? new Uint8Array(randomBytes(32));
        this.alg = alg;
        this.secretKey = sk;
        this.publicKey = publicKeyFromSecretPortable(alg, sk).raw;
        this.chain = [];
        this.serial = '';
        return [okResponse(id, { op: 'keygen', alg: call.alg, publicKey: this.publicKey })];
      }
      case 'pubkey':
        if (this.alg === null || this.publicKey === null) return [errorResponse(id, 'NO_KEY', 'no key')];
        return [okResponse(id, { op: 'pubkey', alg: cose(this.alg), publicKey: this.publicKey })];
      case 'prove': {
        if (this.alg === null || this.publicKey === null || this.secretKey === null) return [errorResponse(id, 'NO_KEY', 'no key')];
        const signature = signPortable(this.alg, this.secretKey, popMessage(call.challenge, this.publicKey));
        if (this.opts.badPop === true) signature[5] = (signature[5] ?? 0) ^ 0x01;
        return [okResponse(id, { op: 'prove', signature })];
      }
      case 'setchain': {
        const leaf = call.chain[0];
        if (this.alg === null || leaf === undefined) return [errorResponse(id, 'NO_KEY', 'no key')];
        this.chain = call.chain;
        this.serial = parseCertificate(leaf).serialNumbers[0] ?? '';
        return [okResponse(id, { op: 'setchain' })];
      }
      case 'selftest': {
        if (this.alg === null) return [errorResponse(id, 'NO_KEY', 'no key')];
        const mode = this.opts.selftest ?? 'good';
        let frame: Uint8Array;
        if (mode === 'wrong-key') {
          const other = new Uint8Array(randomBytes(32));
          publicKeyFromSecretPortable(this.alg, other); // throws for an invalid P-256 scalar (never in practice)
          frame = this.frame({}, other);
        } else if (mode === 'wrong-serial') {
          frame = this.frame({ serial: 'SOMEONE-ELSE' });
        } else if (mode === 'dead-cell') {
          frame = this.frame({ cells: [...Array.from({ length: 15 }, () => 3300), 900], voltage: 15 * 3300 + 900 });
        } else {
          frame = this.frame();
        }
        return [okResponse(id, { op: 'selftest', cose: frame })];
      }
      case 'reboot':
        return [okResponse(id, { op: 'reboot' })];
    }
  }

  /** Closes the device end. */
  close(): Promise<void> {
    return new Promise((r) => {
      if (!this.port.isOpen) {
        r();
        return;
      }
      this.port.close(() => {
        r();
      });
    });
  }

  private onRequest(req: RequestMessage): void {
    this.ops.push(req.op);
    const reply = this.opts.onRequest?.(req, this) ?? 'default';
    if (reply === 'ignore') return;
    for (const m of reply === 'default' ? this.defaultAnswer(req) : reply) this.send(m);
  }
}
