import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadGatewayConfig } from '../../src/home/config.js';
import { loadEnvFile, parseEnvFile } from '../../src/home/env-file.js';
import { isolatedEnv, runCli, serviceCliEntry } from '../support/fake-systemctl.js';
import { tempDir } from '../support/processes.js';

/** `hermes gateway setup` without a terminal: flags, current values and defaults; secrets only in .env. */

const cli = serviceCliEntry();
let dir: ReturnType<typeof tempDir>;
let home: string;

beforeEach(() => {
  dir = tempDir('service-setup');
  home = join(dir.path, 'hermes');
});
afterEach(() => dir.remove());
afterAll(() => cli.remove());

const run = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
  runCli(cli.path, ['gateway', 'setup', ...args], { HOME: dir.path, HERMES_HOME: home, ...extra });
const configText = () => readFileSync(join(home, 'config.yaml'), 'utf8');
const envValues = () => parseEnvFile(readFileSync(join(home, '.env'), 'utf8'));

describe('gateway setup (non-interactive)', () => {
  it('merges into config.yaml, keeps other keys and comments, and puts the API key only in .env (0600)', async () => {
    mkdirSync(home, { recursive: true });
    writeFileSync(
      join(home, 'config.yaml'),
      '# my settings\ngateway:\n  relay_inbound_port: 9000 # inbound\nagent:\n  restart_drain_timeout: 30\nother: value\n',
    );
    writeFileSync(
      join(home, '.env'),
      'GATEWAY_RELAY_URL=http://old.example\nGATEWAY_RELAY_SECRET=kept-secret\n',
    );
    const result = await run(
      [
        '--relay-url',
        'wss://relay.example.com/relay',
        '--agent',
        'openai',
        '--model',
        'gpt-test',
        '--base-url',
        'https://llm.example.com/v1',
      ],
      { OPENAI_API_KEY: 'sk-test-secret-123' },
    );
    expect(result.code, result.stderr).toBe(0);

    const text = configText();
    expect(text).toContain('# my settings');
    expect(text).toContain('# inbound');
    expect(text).not.toContain('sk-test-secret-123');
    expect(parse(text)).toEqual({
      gateway: { relay_inbound_port: 9000, relay_url: 'wss://relay.example.com/relay' },
      agent: { restart_drain_timeout: 30, model: 'gpt-test' },
      other: 'value',
    });

    expect(statSync(join(home, '.env')).mode & 0o777).toBe(0o600);
    const values = envValues();
    expect(values.OPENAI_API_KEY).toBe('sk-test-secret-123');
    expect(values.HERMES_AGENT).toBe('openai');
    expect(values.OPENAI_BASE_URL).toBe('https://llm.example.com/v1');
    expect(values.GATEWAY_RELAY_SECRET).toBe('kept-secret');
    // A .env copy of the relay URL would shadow config.yaml (env wins): it is gone.
    expect(values.GATEWAY_RELAY_URL).toBeUndefined();
    expect(result.stdout).not.toContain('sk-test-secret-123');

    // What the gateway will actually run with.
    const env: NodeJS.ProcessEnv = {};
    loadEnvFile(join(home, '.env'), env);
    const config = loadGatewayConfig({ home, env });
    expect(config).toMatchObject({
      relayUrl: 'wss://relay.example.com/relay',
      agent: 'openai',
      model: 'gpt-test',
      openaiBaseUrl: 'https://llm.example.com/v1',
      openaiApiKey: 'sk-test-secret-123',
      restartDrainTimeoutSeconds: 30,
    });
  });

  it('without flags and without a terminal uses the defaults', async () => {
    const result = await run([]);
    expect(result.code, result.stderr).toBe(0);
    expect(parse(configText())).toEqual({ gateway: { relay_url: 'http://127.0.0.1:8700' } });
    expect(envValues()).toEqual({ HERMES_AGENT: 'echo' });
    expect(statSync(join(home, '.env')).mode & 0o777).toBe(0o600);
    expect(result.stdout).toContain('gateway enroll');
  });

  it('--yes keeps the current relay URL and command', async () => {
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, 'config.yaml'), 'gateway:\n  relay_url: https://current.example\n');
    writeFileSync(join(home, '.env'), 'HERMES_AGENT=command\nHERMES_AGENT_COMMAND=/usr/bin/agent --fast\n');
    const result = await run(['--yes']);
    expect(result.code, result.stderr).toBe(0);
    expect(parse(configText())).toEqual({ gateway: { relay_url: 'https://current.example' } });
    expect(envValues()).toMatchObject({
      HERMES_AGENT: 'command',
      HERMES_AGENT_COMMAND: '/usr/bin/agent --fast',
    });
  });

  it('rejects bad values as usage errors and writes nothing', async () => {
    for (const args of [
      ['--relay-url', 'ftp://relay.example.com'],
      ['--relay-url', 'not a url'],
      ['--agent', 'bogus'],
      ['--agent', 'command', '--yes'],
      ['--base-url', 'ws://llm.example.com'],
    ]) {
      const result = await run(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(existsSync(join(home, 'config.yaml')), args.join(' ')).toBe(false);
      expect(existsSync(join(home, '.env')), args.join(' ')).toBe(false);
    }
  });

  it('refuses to merge into invalid YAML, leaving it untouched', async () => {
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, 'config.yaml'), 'gateway: [unclosed\n');
    const result = await run(['--relay-url', 'http://127.0.0.1:8700', '--agent', 'echo']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('not valid YAML');
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(configText()).toBe('gateway: [unclosed\n');
    expect(existsSync(join(home, '.env'))).toBe(false);
  });

  it('writes a profile home with --profile', async () => {
    const result = await runCli(
      cli.path,
      ['--profile', 'work', 'gateway', 'setup', '--relay-url', 'http://127.0.0.1:8700', '--agent', 'echo'],
      { HOME: dir.path, HERMES_HOME: home },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(existsSync(join(home, 'profiles', 'work', 'config.yaml'))).toBe(true);
    expect(existsSync(join(home, 'config.yaml'))).toBe(false);
  });

  // `script` gives the CLI a pseudo-terminal, so the questions are asked; all answers arrive at once.
  it.skipIf(!existsSync('/usr/bin/script'))(
    'asks on a terminal, re-asks a bad answer, and keeps the key out of config.yaml',
    async () => {
      const child = spawn(
        '/usr/bin/script',
        ['-qec', `'${process.execPath}' '${cli.path}' gateway setup`, '/dev/null'],
        {
          env: isolatedEnv({ HOME: dir.path, HERMES_HOME: home }),
          stdio: ['pipe', 'pipe', 'pipe'],
        },
      );
      let output = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      const exited = new Promise<number | null>((resolveExit) =>
        child.once('exit', (code) => resolveExit(code)),
      );
      child.stdin?.end(
        'ftp://relay.example\rwss://relay.example/relay\ropenai\r\rhttps://llm.example/v1\rsk-typed-key\r',
      );
      expect(await exited, output).toBe(0);
      expect(output).toContain('the relay URL must start with');
      expect(output).toContain('API key:');
      expect(parse(configText())).toEqual({
        gateway: { relay_url: 'wss://relay.example/relay' },
        agent: { model: 'gpt-4o-mini' },
      });
      expect(configText()).not.toContain('sk-typed-key');
      expect(envValues()).toEqual({
        HERMES_AGENT: 'openai',
        OPENAI_BASE_URL: 'https://llm.example/v1',
        OPENAI_API_KEY: 'sk-typed-key',
      });
    },
  );
});
