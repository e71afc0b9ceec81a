import type { Command } from 'commander';

export function applyExamples(_program: Command): void {}
