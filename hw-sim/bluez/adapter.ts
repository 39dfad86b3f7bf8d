/**
 * The BlueZ root and adapter objects node-ble walks before it reaches a device: `/org/bluez` with
 * org.bluez.AgentManager1 (node-ble binds to it to list adapters as child nodes, never calls it)
 * and `/org/bluez/hci0` with org.bluez.Adapter1 (doc/adapter-api.txt). Discovery is per D-Bus
 * client, as in src/adapter.c: each client starts and stops its own session, a second
 * StartDiscovery from the same client is InProgress, StopDiscovery without a session is Failed "No
 * discovery started", a client that leaves the bus loses its session, and Discovering is true while
 * any session is open. The gateway meets this directly: node-ble's startDiscovery() refuses when
 * Discovering is already true, even if another client's session is the reason.
 */
import { bluezError, Interface, ro, Variant } from './dbus.js';

export class AgentManager1 extends Interface {
  constructor() {
    super('org.bluez.AgentManager1');
  }
  RegisterAgent(_agent: string, _capability: string): void {
    // Present so the interface matches BlueZ's; packchain pairs nothing.
  }
  UnregisterAgent(_agent: string): void {
    // See RegisterAgent.
  }
  RequestDefaultAgent(_agent: string): void {
    // See RegisterAgent.
  }
}
AgentManager1.configureMembers({
  methods: {
    RegisterAgent: { inSignature: 'os' },
    UnregisterAgent: { inSignature: 'o' },
    RequestDefaultAgent: { inSignature: 'o' },
  },
});

export interface AdapterIdentity {
  /** Object name under /org/bluez (default "hci0"). */
  name?: string;
  /** Controller address (default "00:00:5E:00:53:01", in the range RFC 7042 reserves for documentation). */
  address?: string;
  /** System name and alias (default "hw-sim"). */
  alias?: string;
}

/** The filter keys BlueZ 5.x accepts in SetDiscoveryFilter. */
const FILTER_KEYS = new Set(['UUIDs', 'RSSI', 'Pathloss', 'Transport', 'DuplicateData', 'Discoverable', 'Pattern']);
const TRANSPORTS = new Set(['auto', 'bredr', 'le']);

export class Adapter1 extends Interface {
  private readonly sessions = new Set<string>();
  private readonly filters = new Map<string, Record<string, Variant>>();

  constructor(
    readonly path: string,
    private readonly identity: Required<AdapterIdentity>,
    private readonly caller: () => string,
    private readonly onDiscoveryStarted: () => void,
  ) {
    super('org.bluez.Adapter1');
  }

  get Address(): string {
    return this.identity.address;
  }
  get AddressType(): string {
    return 'public';
  }
  get Name(): string {
    return this.identity.alias;
  }
  get Alias(): string {
    return this.identity.alias;
  }
  get Powered(): boolean {
    return true;
  }
  get Discovering(): boolean {
    return this.sessions.size > 0;
  }

  SetDiscoveryFilter(filter: Record<string, Variant>): void {
    for (const [key, value] of Object.entries(filter)) {
      if (!FILTER_KEYS.has(key)) throw bluezError.invalidArgs();
      if (key === 'Transport' && !TRANSPORTS.has(String(value.value))) throw bluezError.invalidArgs();
    }
    // Devices carry no transport or RSSI of their own: the filter is kept (per client, as BlueZ
    // does) but every simulated device matches it.
    this.filters.set(this.caller(), filter);
  }

  StartDiscovery(): void {
    const sender = this.caller();
    if (this.sessions.has(sender)) throw bluezError.busy();
    this.sessions.add(sender);
    if (this.sessions.size === 1) this.changed();
    this.onDiscoveryStarted();
  }

  StopDiscovery(): void {
    const sender = this.caller();
    if (!this.sessions.delete(sender)) throw bluezError.failed('No discovery started');
    this.filters.delete(sender);
    if (this.sessions.size === 0) this.changed();
  }

  /** A client left the bus: BlueZ's disconnect watch ends its discovery session. */
  dropClient(sender: string): void {
    this.filters.delete(sender);
    if (this.sessions.delete(sender) && this.sessions.size === 0) this.changed();
  }

  private changed(): void {
    Interface.emitPropertiesChanged(this, { Discovering: this.sessions.size > 0 }, []);
  }
}
Adapter1.configureMembers({
  properties: {
    Address: ro('s'),
    AddressType: ro('s'),
    Name: ro('s'),
    Alias: ro('s'),
    Powered: ro('b'),
    Discovering: ro('b'),
  },
  methods: {
    SetDiscoveryFilter: { inSignature: 'a{sv}' },
    StartDiscovery: {},
    StopDiscovery: {},
  },
});
