/**
 * Test child for mqtt.test.ts (not exported): runs an MqttPublisher against the broker and topics
 * given in argv, prints "ready" once connected, and waits to be killed with SIGKILL — the test then
 * checks that the broker published the client's last will ("offline") on the availability topic,
 * which only a real process death (no DISCONNECT packet) can show.
 */
import { MqttPublisher } from './mqtt.js';

const [url, topicPrefix, discoveryPrefix] = process.argv.slice(2);
if (url === undefined || topicPrefix === undefined || discoveryPrefix === undefined) {
  process.stderr.write('usage: mqtt-lwt-child <url> <topicPrefix> <discoveryPrefix>\n');
  process.exit(2);
}
const p = new MqttPublisher({ url, gateway: 'gw-lwt', topicPrefix, discoveryPrefix, discovery: false, reconnectPeriodMs: 200 });
const timer = setInterval(() => {
  if (p.status().connected) {
    clearInterval(timer);
    process.stdout.write('ready\n');
  }
}, 20);
setInterval(() => undefined, 60_000); // stay alive until killed
