/**
 * FakeBluez: an org.bluez service on a private bus (bus.ts) that the real node-ble 1.13 drives as
 * if it were BlueZ, so the gateway's BLE transport is tested against the library it ships with.
 * It exports exactly what node-ble walks (NOTES.md): `/org/bluez` (AgentManager1), the adapter
 * (Adapter1) and, once a discovery session has seen them, one Device1 per simulated BMU with its
 * GATT tree. node-ble finds children by introspection and reads properties with Properties.Get;
 * dbus-next's introspection lists every exported path's children, which is all that needs. It
 * never calls ObjectManager, so none is exported. Sessions (discovery, notifications) are keyed by
 * the caller's unique bus name and end when that client leaves the bus, as in BlueZ.
 */
import { SimError } from '../errors.js';
import { Adapter1, AgentManager1, type AdapterIdentity } from './adapter.js';
import { CallerTracker, NameFlag, RequestNameReply, sessionBus, type MessageBus } from './dbus.js';
import { SimDevice } from './device.js';
import type { BleDeviceHandle, BleDeviceSpec, DeviceHost } from './handle.js';

export interface FakeBluezOptions {
  /** Address of the bus to serve on: a PrivateBus's `address`. */
  busAddress: string;
  adapter?: AdapterIdentity;
  /**
   * Simultaneous LE connections the simulated controller accepts (default unlimited). Real
   * controllers take a handful to a few dozen; a Connect beyond the limit fails.
   */
  maxConnections?: number;
  /**
   * Called when a firmware callback (onWrite, onConnect, …) throws. Default: rethrow on the next
   * tick, so a firmware bug crashes loudly instead of becoming a D-Bus error the client would see.
   */
  onCallbackError?: (err: unknown) => void;
}

export const BLUEZ_NAME = 'org.bluez';
const ROOT = '/org/bluez';

function connect(busAddress: string): Promise<MessageBus> {
  const bus = sessionBus({ busAddress });
  return new Promise((resolve, reject) => {
    const onError = (err: unknown) => {
      reject(new SimError('BLUEZ_NAME', `hw-sim: cannot connect to ${busAddress}: ${String(err)}`, { cause: err }));
    };
    bus.once('error', onError);
    bus.once('connect', () => {
      bus.off('error', onError);
      resolve(bus);
    });
  });
}

export class FakeBluez {
  private readonly byAddress = new Map<string, SimDevice>();
  private readonly host: DeviceHost;
  private stopping: Promise<void> | null = null;

  private constructor(
    private readonly bus: MessageBus,
    private readonly caller: CallerTracker,
    private readonly adapter: Adapter1,
    private readonly agentManager: AgentManager1,
    private readonly nameWatch: { off(): void },
    onCallbackError: (err: unknown) => void,
    maxConnections: number,
  ) {
    const byAddress = this.byAddress;
    this.host = {
      adapterPath: adapter.path,
      get discovering() {
        return adapter.Discovering;
      },
      connectionSlotFree: () => {
        let connected = 0;
        for (const d of byAddress.values()) if (d.connected) connected += 1;
        return connected < maxConnections;
      },
      caller: () => caller.current,
      exportObject: (path, iface) => {
        bus.export(path, iface);
      },
      unexportObject: (path, iface) => {
        bus.unexport(path, iface);
      },
      forget: (address) => byAddress.delete(address),
      callbackFailed: onCallbackError,
    };
  }

  /**
   * Connects to the bus, claims org.bluez and exports the root and adapter objects. Throws
   * BLUEZ_NAME when the bus cannot be reached or the name is already owned, BLUEZ_ARGUMENT for a
   * maxConnections below 1.
   */
  static async start(options: FakeBluezOptions): Promise<FakeBluez> {
    const maxConnections = options.maxConnections ?? Infinity;
    if (!(maxConnections >= 1)) throw new SimError('BLUEZ_ARGUMENT', `hw-sim: maxConnections ${maxConnections}, expected at least 1`);
    const bus = await connect(options.busAddress);
    // After start a bus error (the daemon went away) must not crash the process: stop() still works.
    bus.on('error', () => undefined);
    try {
      const reply = await bus.requestName(BLUEZ_NAME, NameFlag.DO_NOT_QUEUE);
      if (reply !== RequestNameReply.PRIMARY_OWNER) {
        throw new SimError('BLUEZ_NAME', `hw-sim: ${BLUEZ_NAME} is already owned on ${options.busAddress}`);
      }
      const caller = new CallerTracker(bus);
      const identity = {
        name: options.adapter?.name ?? 'hci0',
        address: (options.adapter?.address ?? '00:00:5E:00:53:01').toUpperCase(),
        alias: options.adapter?.alias ?? 'hw-sim',
      };
      let service: FakeBluez | null = null;
      const adapter = new Adapter1(`${ROOT}/${identity.name}`, identity, () => caller.current, () => service?.discoveryStarted());
      const agentManager = new AgentManager1();
      const nameWatch = await watchDepartures(bus, (sender) => service?.clientGone(sender));
      const rethrow = (err: unknown) => {
        process.nextTick(() => {
          throw err;
        });
      };
      service = new FakeBluez(bus, caller, adapter, agentManager, nameWatch, options.onCallbackError ?? rethrow, maxConnections);
      bus.export(ROOT, agentManager);
      bus.export(adapter.path, adapter);
      return service;
    } catch (err) {
      bus.disconnect();
      throw err;
    }
  }

  get adapterPath(): string {
    return this.adapter.path;
  }

  get discovering(): boolean {
    return this.adapter.Discovering;
  }

  /** Every device not removed, in insertion order. */
  get devices(): BleDeviceHandle[] {
    return [...this.byAddress.values()];
  }

  device(address: string): BleDeviceHandle | undefined {
    return this.byAddress.get(address.toUpperCase());
  }

  /**
   * Adds a simulated BMU. It shows up on the bus once a discovery session sees it advertising.
   * Throws BLUEZ_STOPPED after stop(), BLUEZ_DEVICE_EXISTS for a known address, BLUEZ_ARGUMENT for
   * a bad address, name, MTU or device info.
   */
  addDevice(spec: BleDeviceSpec): BleDeviceHandle {
    if (this.stopping) throw new SimError('BLUEZ_STOPPED', 'hw-sim: the fake BlueZ was stopped');
    const address = spec.address.toUpperCase();
    if (this.byAddress.has(address)) throw new SimError('BLUEZ_DEVICE_EXISTS', `hw-sim: device ${address} already exists`);
    const device = new SimDevice(spec, this.host);
    this.byAddress.set(device.address, device);
    device.discovered();
    return device;
  }

  /** Removes a device (disconnecting it first). Throws BLUEZ_DEVICE_UNKNOWN for an unknown address. */
  removeDevice(address: string): void {
    const device = this.byAddress.get(address.toUpperCase());
    if (!device) throw new SimError('BLUEZ_DEVICE_UNKNOWN', `hw-sim: no device ${address}`);
    device.remove();
  }

  /** Removes every device, releases org.bluez and closes the connection. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const device of [...this.byAddress.values()]) device.remove();
      this.bus.unexport(this.adapter.path, this.adapter);
      this.bus.unexport(ROOT, this.agentManager);
      this.nameWatch.off();
      this.caller.detach();
      try {
        await this.bus.releaseName(BLUEZ_NAME);
      } catch {
        // the daemon is already gone: nothing to release
      }
      this.bus.disconnect();
    })();
    return this.stopping;
  }

  private discoveryStarted(): void {
    for (const device of this.byAddress.values()) device.discovered();
  }

  private clientGone(sender: string): void {
    this.adapter.dropClient(sender);
    for (const device of this.byAddress.values()) device.dropClient(sender);
  }
}

/** Calls `gone(name)` whenever a unique connection name leaves the bus (NameOwnerChanged to ""). */
async function watchDepartures(bus: MessageBus, gone: (sender: string) => void): Promise<{ off(): void }> {
  const obj = await bus.getProxyObject('org.freedesktop.DBus', '/org/freedesktop/DBus');
  const daemon = obj.getInterface('org.freedesktop.DBus');
  const listener = (name: string, _old: string, next: string) => {
    if (next === '' && name.startsWith(':')) gone(name);
  };
  daemon.on('NameOwnerChanged', listener);
  return {
    off: () => {
      daemon.off('NameOwnerChanged', listener);
    },
  };
}

