/**
 * Worker-thread entry of the ledger's verify pool (verify-pool.ts): receives batches of frames with
 * their devices' raw keys, verifies them (verify-frame.ts) with imported KeyObjects cached per
 * worker by certificate SHA-256, and posts back compact typed arrays (transferred, not copied). It
 * holds nothing that matters beyond that cache: a worker that dies loses only its batch, which the
 * pool fails (the upload is refused and the gateway sends it again).
 */
import { parentPort } from 'node:worker_threads';
import { DeviceKeyCache } from '../protocol/index.js';
import { verifyBatch, type BatchRequest } from './verify-frame.js';

const port = parentPort;
if (port === null) throw new Error('ledger: verify-worker.ts must run as a worker thread');
const cache = new DeviceKeyCache(4096);

port.on('message', (req: BatchRequest) => {
  const reply = verifyBatch(req, cache);
  port.postMessage(reply, [reply.ok.buffer, reply.values.buffer, reply.hashes.buffer]);
});
port.postMessage('ready');
