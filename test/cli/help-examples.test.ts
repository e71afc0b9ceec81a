import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { allCommands, commandPath, EXAMPLES } from '../../src/cli/examples.js';
import { buildProgram } from '../../src/cli/main.js';

/** The whole `--help` of a command (with the text added after it), without exiting. */
function helpOf(command: Command): string {
  let out = '';
  command.configureOutput({ writeOut: (text) => (out += text), writeErr: (text) => (out += text) });
  command.outputHelp();
  return out;
}

/** An indented line that runs `hermes <path> …` (after VAR=… prefixes, sudo, global options). */
function runsPath(line: string, path: string[]): boolean {
  if (!/^\s{2,}\S/.test(line)) return false;
  const tokens = line.trim().split(/\s+/);
  while (tokens.length > 0 && /^[A-Z_][A-Z0-9_]*=/.test(tokens[0] as string)) tokens.shift();
  if (tokens[0] === 'sudo') tokens.shift();
  if (tokens.shift() !== 'hermes') return false;
  for (;;) {
    const head = tokens[0];
    if (head === '--profile' || head === '-p' || head === '--log-level' || head === '--log-format')
      tokens.splice(0, 2);
    else if (head === '-v' || head === '--verbose') tokens.shift();
    else break;
  }
  return path.every((name, i) => tokens[i] === name);
}

const program = buildProgram();
const commands = allCommands(program);
const leaves = commands.filter((command) => command.commands.length === 0);

describe('every leaf command shows an example in --help', () => {
  it('finds the whole tree (connector, gateway, proxy, dashboard, doctor, demo, version)', () => {
    const paths = leaves.map(commandPath);
    for (const path of ['connector gateway revoke', 'gateway stop', 'proxy status', 'doctor', 'version'])
      expect(paths).toContain(path);
    expect(leaves.length).toBeGreaterThanOrEqual(30);
  });

  it.each(leaves.map((command) => [commandPath(command), command] as const))(
    'hermes %s --help has a `hermes %s …` example',
    (path, command) => {
      const lines = helpOf(command).split('\n');
      expect(
        lines.filter((line) => runsPath(line, path.split(' '))),
        lines.join('\n'),
      ).not.toEqual([]);
    },
  );

  it('no command shows the same example twice (inline and from the map)', () => {
    for (const command of commands) {
      const examples = helpOf(command)
        .split('\n')
        .filter((line) => /^\s{2,}\S/.test(line) && /(^|\s)hermes\s/.test(line) && !/^\s+-/.test(line))
        .map((line) => line.trim());
      expect(new Set(examples).size, `${commandPath(command)}: ${examples.join(' | ')}`).toBe(
        examples.length,
      );
    }
  });

  it('every entry of the map names a real command and its examples run that command', () => {
    const byPath = new Map(commands.map((command) => [commandPath(command), command]));
    for (const [path, lines] of Object.entries(EXAMPLES)) {
      expect(byPath.has(path), path).toBe(true);
      expect(lines.length, path).toBeGreaterThan(0);
      // An example may show the next step (`gateway idle` → `gateway start`), but the first runs it.
      expect(runsPath(`  ${lines[0]}`, path.split(' ')), `${path}: ${lines[0]}`).toBe(true);
    }
  });
});
