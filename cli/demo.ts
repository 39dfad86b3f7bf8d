/**
 * `packchain demo`: the main job on embedded defaults. Until the end-to-end issue lands it runs
 * what exists: the protocol round trip (sign, verify, log, checkpoint, prove).
 */
import type { Command } from 'commander';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the packchain demo on embedded defaults')
    .action(() => {
      process.stdout.write('packchain demo: protocol only so far\n');
    });
}
