/**
 * Option checks of the serial and BLE transports: every bad option is a TRANSPORT_CONFIG error
 * naming it, raised in the constructor before any port or D-Bus connection is touched.
 */
import { describe, expect, it } from 'vitest';
import { BleTransport } from './ble.js';
import { SerialTransport } from './serial.js';

const config = (message: RegExp): Error => expect.objectContaining({ code: 'TRANSPORT_CONFIG', message: expect.stringMatching(message) as unknown }) as Error;

describe('SerialTransport options', () => {
  it('when an option is out of range › throws TRANSPORT_CONFIG naming it, before touching any port', () => {
    expect(() => new SerialTransport({ ports: [] })).toThrow(config(/^gateway: transport: serial: ports must list at least one path or glob$/));
    expect(() => new SerialTransport({ ports: [''] })).toThrow(config(/ports entry "" is not a path or glob/));
    expect(() => new SerialTransport({ ports: ['/dev/ttyUSB0'], baudRate: 0 })).toThrow(config(/baudRate must be an integer/));
    expect(() => new SerialTransport({ ports: ['/dev/ttyUSB0'], pollMs: -5 })).toThrow(config(/pollMs must be a positive finite number/));
    expect(() => new SerialTransport({ ports: ['/dev/ttyUSB0'], maxLineBytes: 8192 })).toThrow(config(/maxLineBytes must be an integer from 64 to 4096/));
    expect(() => new SerialTransport({ ports: ['/dev/ttyUSB0'], rate: { messagesPerSecond: 0 } })).toThrow(config(/rate.messagesPerSecond/));
    expect(() => new SerialTransport({ ports: ['/dev/ttyUSB0'], backoff: { initialMs: 10, maxMs: 5 } })).toThrow(config(/backoff.maxMs/));
  });

  it('accepts explicit paths and globs', () => {
    expect(new SerialTransport({ ports: ['/dev/ttyUSB*', '/dev/serial/by-id/usb-FTDI_*', '/dev/ttyS0'] }).status()).toMatchObject({ kind: 'serial', state: 'idle', endpoints: [], open: 0 });
  });
});

describe('BleTransport options', () => {
  it('when an option is out of range › throws TRANSPORT_CONFIG naming it, before touching D-Bus', () => {
    expect(() => new BleTransport({ chunkSize: 19 })).toThrow(config(/chunkSize must be an integer from 20 to 244/));
    expect(() => new BleTransport({ maxDevices: 0 })).toThrow(config(/maxDevices/));
    expect(() => new BleTransport({ addresses: ['C0:DE:00:00:00'] })).toThrow(config(/addresses entry "C0:DE:00:00:00" is not a Bluetooth address/));
    expect(() => new BleTransport({ scanIntervalMs: 0 })).toThrow(config(/scanIntervalMs/));
    expect(() => new BleTransport({ maxMessageBytes: 4 })).toThrow(config(/maxMessageBytes/));
    expect(() => new BleTransport({ backoff: { jitter: -1 } })).toThrow(config(/backoff.jitter/));
    expect(() => new BleTransport({ maxDevices: 10, matchRuleBudget: 79 })).toThrow(config(/matchRuleBudget \(8 per device of maxDevices at least\) must be an integer from 80/));
  });
});
