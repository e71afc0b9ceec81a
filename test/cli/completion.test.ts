import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bashCompletion, fishCompletion, zshCompletion } from '../../src/cli/completion.js';
import { buildProgram } from '../../src/cli/main.js';
import { hermes, tempDir } from '../support/processes.js';

const dir = tempDir('completion');
afterAll(() => dir.remove());

const hasShell = (shell: string) => spawnSync(shell, ['-c', 'exit 0']).status === 0;

/** Source the script in a child bash and run `_hermes` for the words typed (the last is completed). */
function complete(script: string, words: string[]): string[] {
  const file = join(dir.path, 'hermes.bash');
  writeFileSync(file, script);
  const array = words.map((word) => `'${word}'`).join(' ');
  const out = execFileSync(
    'bash',
    [
      '-c',
      `source "$1"; COMP_WORDS=(${array}); COMP_CWORD=${words.length - 1}; _hermes; printf '%s\\n' "\${COMPREPLY[@]}"`,
      'x',
      file,
    ],
    { encoding: 'utf8' },
  );
  return out.split('\n').filter(Boolean);
}

describe('hermes completion', () => {
  it('bash: the CLI prints a script that parses (bash -n)', async () => {
    const result = await hermes(['completion', 'bash']);
    expect(result.code).toBe(0);
    const file = join(dir.path, 'cli.bash');
    writeFileSync(file, result.stdout);
    expect(spawnSync('bash', ['-n', file]).status).toBe(0);
    expect(result.stdout).toContain('complete -F _hermes hermes');
  });

  it('bash: completes commands, subcommands and options from the tree', () => {
    const script = bashCompletion(buildProgram());
    expect(complete(script, ['hermes', 'conn'])).toEqual(['connector']);
    const gateway = complete(script, ['hermes', 'connector', 'gateway', '']);
    expect(gateway.filter((word) => !word.startsWith('-'))).toEqual(['list', 'revoke', 'rotate']);
    // A global option with a value before the command does not derail it.
    expect(complete(script, ['hermes', '--profile', 'work', 'gateway', 'sto'])).toEqual(['stop']);
    // Options of the command in hand.
    expect(complete(script, ['hermes', 'connector', 'gateway', 'revoke', '--y'])).toEqual(['--yes']);
    expect(complete(script, ['hermes', 'gateway', 'status', '--'])).toEqual(
      expect.arrayContaining(['--json', '--deep', '--profile']),
    );
  });

  it('zsh: parses with zsh -n when installed, else carries the bash function through bashcompinit', () => {
    const script = zshCompletion(buildProgram());
    expect(script.startsWith('#compdef hermes\n')).toBe(true);
    expect(script).toContain('bashcompinit');
    expect(script).toContain('complete -F _hermes hermes');
    if (hasShell('zsh')) {
      const file = join(dir.path, '_hermes');
      writeFileSync(file, script);
      expect(spawnSync('zsh', ['-n', file]).status).toBe(0);
    }
  });

  it('fish: parses with fish -n when installed, else one complete line per command', () => {
    const script = fishCompletion(buildProgram());
    expect(script).toContain('function __hermes_path');
    expect(script).toContain(
      `complete -c hermes -n 'test (__hermes_path) = '\\''connector gateway'\\''' -a 'list revoke rotate'`,
    );
    expect(script).toContain(`complete -c hermes -n 'test (__hermes_path) = '\\'''\\''' -a '`);
    // Every line outside the helper function is a `complete` for hermes.
    const body = script.split('\nend\n')[1] ?? '';
    for (const line of body.split('\n').filter(Boolean))
      expect(line.startsWith('complete -c hermes ')).toBe(true);
    if (hasShell('fish')) {
      const file = join(dir.path, 'hermes.fish');
      writeFileSync(file, script);
      expect(spawnSync('fish', ['-n', file]).status).toBe(0);
    }
  });

  it('refuses an unknown shell with exit 2', async () => {
    const result = await hermes(['completion', 'powershell']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('use bash, zsh or fish');
  });
});
