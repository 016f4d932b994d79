// `mirrorfarm admin ...` (placeholder until the admin CLI lands).
import type { Command } from 'commander';

export function registerAdminCommands(program: Command): void {
  program.command('admin').description('Administer a mirrorfarm server over its REST API.');
}
