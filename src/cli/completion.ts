import type { Command } from 'commander';

export function registerCompletionCommand(_program: Command): void {}
