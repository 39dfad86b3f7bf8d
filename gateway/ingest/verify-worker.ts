/**
 * Worker-thread entry of the verification pool (verify.ts): receives batches of frames with their
 * devices' raw keys, verifies them with node:crypto and builds their log leaves and leaf hashes
 * (verify-frame.ts), keeps imported KeyObjects in a per-worker cache keyed by certificate SHA-256,
 * and posts back compact typed arrays (hashes, counters, leaf bytes; transferred, not copied). It
 * holds no state that matters beyond that cache: a worker that dies loses only its batch, which the
 * pool reports as WORKER_FAILED (the frames are not acked and the devices resend them).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { DeviceKeyCache } from '../../protocol/index.js';
import { replyTransfer, verifyBatch, type BatchRequest } from './verify-frame.js';

const port = parentPort;
if (port === null) throw new Error('gateway: verify-worker.ts must run as a worker thread');
const opts = workerData as { keyCacheSize?: number } | undefined;
const cache = new DeviceKeyCache(opts?.keyCacheSize ?? 4096);

port.on('message', (req: BatchRequest) => {
  const reply = verifyBatch(req, cache);
  port.postMessage(reply, replyTransfer(reply));
});
port.postMessage('ready');
