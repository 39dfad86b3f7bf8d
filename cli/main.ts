#!/usr/bin/env node
/**
 * packchain CLI: the one place that wires the modules together. Command groups (sim, provision,
 * gateway, ledger, demo) arrive with the issues that build them; each lives in its own file here.
 */
import { Command } from 'commander';
import { registerDemo } from './demo.js';
import { registerGateway } from './gateway.js';
import { registerLedger } from './ledger.js';
import { registerProvision } from './provision.js';
import { registerSim } from './sim.js';
import { packageVersion } from './version.js';

export function buildProgram(): Command {
  const program = new Command('packchain')
    .description('Signed battery state-of-health frames from BMU to a tamper-evident ledger')
    .version(packageVersion());
  registerSim(program);
  registerProvision(program);
  registerGateway(program);
  registerLedger(program);
  registerDemo(program);
  return program;
}

await buildProgram().parseAsync(process.argv);
