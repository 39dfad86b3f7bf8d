/**
 * `packchain provision …`: the line technician's station (provisioning/). The CA and registry
 * commands (ca init/show/crl, revoke, export, list, show) live in provision-ca.ts, the pack attempt
 * and line mode (pack, line) in provision-pack.ts; both share provision-common.ts for the station
 * directory, passphrases and the error → exit-code mapping of provisioning/errors.ts.
 */
import type { Command } from 'commander';
import { registerProvisionCa } from './provision-ca.js';
import { registerProvisionPack } from './provision-pack.js';

export function registerProvision(program: Command): void {
  const provision = program
    .command('provision')
    .description('provisioning station: factory CA, on-device keys with proof of possession, certificates, self-test, registry, revocation');
  registerProvisionCa(provision);
  registerProvisionPack(provision);
}
