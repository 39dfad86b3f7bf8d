/**
 * hw-sim's one error class. Every failure the simulator reports to its caller is a SimError whose
 * `code` says what went wrong; callers branch on `code`, never on message text, and messages start
 * with "hw-sim: ". Codes are grouped by the part of hw-sim that raises them (one union per area, so
 * each area's owner adds codes with a one-line edit); docs/hw-sim.md lists when each is raised.
 */

/** Private dbus-daemon and fake BlueZ (hw-sim/bluez/). */
export type BluezErrorCode =
  | 'BUS_START' // dbus-daemon missing, refused the config, or printed no address/pid
  | 'BUS_PATH' // the bus directory is unusable (socket path too long for sun_path, already in use)
  | 'BLUEZ_NAME' // the bus cannot be reached, or org.bluez is already owned on it
  | 'BLUEZ_ARGUMENT' // a bad device address, name, MTU, RSSI/TxPower or device info, or maxConnections < 1
  | 'BLUEZ_DEVICE_EXISTS' // addDevice with an address already present
  | 'BLUEZ_DEVICE_UNKNOWN' // removeDevice of an address not present
  | 'BLUEZ_CHUNK' // notify() with more than ATT_MTU − 3 bytes (a firmware bug)
  | 'BLUEZ_STOPPED'; // addDevice after the service was stopped

/** Device flash (hw-sim/flash.ts), firmware (hw-sim/firmware.ts) and the serial link (hw-sim/serial-link.ts). */
export type FirmwareErrorCode =
  | 'FLASH_CORRUPT' // a state file that is unreadable or off its format (a torn journal tail is recovered, not this)
  | 'FLASH_CONFIG' // bad factory settings (model, firmware version, ring capacity) or a missing identity
  | 'FLASH_CLOSED' // an operation on flash after close()
  | 'LINK_DOWN' // send() while the link is down, or the link went down before the bytes were written
  | 'LINK_CLOSED' // the link was closed for good
  | 'LINK_CONFIG' // a serial link with a non-positive baud rate or bits per byte
  | 'PTY_START'; // socat missing, exited early, or its links did not appear in time

/** Battery model (hw-sim/model.ts, model-*.ts, chemistry.ts) and current profiles (hw-sim/profile.ts). */
export type ModelErrorCode =
  | 'MODEL_CONFIG' // a pack configuration outside its documented range (cells 1..32, capacity > 0, ...)
  | 'MODEL_ARGUMENT' // a bad step size, ambient temperature or fault name
  | 'MODEL_SNAPSHOT' // a battery snapshot that is not one this version wrote
  | 'PROFILE_SPEC'; // a current-profile spec or profile state that is malformed

/** Fault injection (hw-sim/faults*.ts). */
export type FaultErrorCode =
  | 'FAULT_SPEC' // a --faults spec that is not kind=rate,... with known kinds and rates 0..600 per device per minute
  | 'FAULT_ARGUMENT'; // an injected fault with bad parameters, for a transport it does not exist on, or an unknown pack

export type SimErrorCode = BluezErrorCode | FirmwareErrorCode | ModelErrorCode | FaultErrorCode;

export class SimError extends Error {
  override readonly name = 'SimError';

  constructor(
    readonly code: SimErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function isSimError(e: unknown): e is SimError {
  return e instanceof SimError;
}
