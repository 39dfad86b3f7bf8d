/**
 * The slice of dbus-next the fake BlueZ is built on, and BlueZ's D-Bus error replies. dbus-next
 * is CommonJS: its default import is `module.exports`, re-exported here under the names the other
 * files use, so only this file knows the package's shape. Error names and texts follow BlueZ's
 * src/error.c and the call sites in src/adapter.c, src/device.c and src/gatt-client.c as far as we
 * know them (docs/hw-sim.md §4 lists where the fake is a guess). dbus-next passes a method only
 * its arguments, never the message, so `CallerTracker` records each incoming call's sender just
 * before dbus-next dispatches it: BlueZ keys discovery and notification sessions by sender.
 */
import dbus from 'dbus-next';

export const Interface = dbus.interface.Interface;
export const { Variant, DBusError, NameFlag, RequestNameReply, sessionBus } = dbus;
export type Variant = dbus.Variant;
export type MessageBus = dbus.MessageBus;
export type DbusInterface = dbus.interface.Interface;

/** Read-only D-Bus property options (every property of the fake is read-only, as in BlueZ). */
export function ro(signature: string): { signature: string; access: 'read' } {
  return { signature, access: 'read' };
}

/** Emits org.freedesktop.DBus.Properties.PropertiesChanged for `iface` (nothing if unexported). */
export function propertiesChanged(iface: DbusInterface, changed: Record<string, unknown>): void {
  Interface.emitPropertiesChanged(iface, changed, []);
}

/** BlueZ error replies, named and worded as src/error.c. */
export const bluezError = {
  failed: (text: string) => new DBusError('org.bluez.Error.Failed', text),
  /** btd_error_busy: a second StartDiscovery from the same client. */
  busy: () => new DBusError('org.bluez.Error.InProgress', 'Operation already in progress'),
  inProgress: () => new DBusError('org.bluez.Error.InProgress', 'In Progress'),
  invalidArgs: (text = 'Invalid arguments in method call') => new DBusError('org.bluez.Error.InvalidArguments', text),
  notSupported: () => new DBusError('org.bluez.Error.NotSupported', 'Operation is not supported'),
  notPermitted: (text: string) => new DBusError('org.bluez.Error.NotPermitted', text),
  notConnected: () => new DBusError('org.bluez.Error.NotConnected', 'Not Connected'),
  alreadyExists: (text = 'Already Exists') => new DBusError('org.bluez.Error.AlreadyExists', text),
  doesNotExist: () => new DBusError('org.bluez.Error.DoesNotExist', 'Does Not Exist'),
};

/** Unwraps an a{sv} option of the expected JS type, or throws InvalidArguments naming it. */
export function option<T extends 'string' | 'number'>(
  options: unknown,
  key: string,
  type: T,
): (T extends 'string' ? string : number) | undefined {
  if (typeof options !== 'object' || options === null) throw bluezError.invalidArgs();
  const v: unknown = (options as Record<string, unknown>)[key];
  if (v === undefined) return undefined;
  const value: unknown = v instanceof Variant ? v.value : v;
  if (typeof value !== type) throw bluezError.invalidArgs(`Invalid ${key}`);
  return value as T extends 'string' ? string : number;
}

/**
 * Remembers the sender of the method call being dispatched. dbus-next runs method handlers
 * synchronously before its own dispatch, so a handler that records `msg.sender` and declines the
 * message (returns false) makes the sender available to the Interface method that runs next.
 */
export class CallerTracker {
  private sender = '';
  private readonly handler = (msg: { sender?: string }): boolean => {
    this.sender = msg.sender ?? '';
    return false;
  };

  constructor(private readonly bus: MessageBus) {
    bus.addMethodHandler(this.handler);
  }

  /** Unique bus name (":1.42") of the client whose call is being dispatched (valid synchronously inside a method). */
  get current(): string {
    return this.sender;
  }

  detach(): void {
    this.bus.removeMethodHandler(this.handler);
  }
}
