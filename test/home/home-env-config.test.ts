import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  isoUtc,
  parseIsoTimestamp,
  readJsonFile,
  writeFileAtomic,
  writeJsonAtomic,
} from '../../src/home/atomic-file.js';
import {
  type GatewayConfig,
  GatewayConfigError,
  loadGatewayConfig,
  redactConfig,
} from '../../src/home/config.js';
import { formatEnvValue, loadEnvFile, parseEnvFile, saveEnvValues } from '../../src/home/env-file.js';
import { ensureHome, resolveHome } from '../../src/home/home.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hermes-gw-cfg-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const modeOf = (path: string) => statSync(path).mode & 0o777;

describe('atomic file helpers', () => {
  it('writes with the requested mode, creates the parent 0700 and leaves no temp file', () => {
    const dir = tempDir();
    const path = join(dir, 'nested', 'file.json');
    writeFileAtomic(path, 'one', 0o640);
    expect(readFileSync(path, 'utf8')).toBe('one');
    expect(modeOf(path)).toBe(0o640);
    expect(modeOf(join(dir, 'nested'))).toBe(0o700);
    chmodSync(path, 0o666);
    writeFileAtomic(path, 'two', 0o600);
    expect(readFileSync(path, 'utf8')).toBe('two');
    expect(modeOf(path)).toBe(0o600);
    expect(readdirSync(join(dir, 'nested'))).toEqual(['file.json']);
  });

  it('reads JSON as absent / invalid / ok', () => {
    const dir = tempDir();
    expect(readJsonFile(join(dir, 'missing.json'))).toEqual({ kind: 'absent' });
    writeFileSync(join(dir, 'bad.json'), '{nope');
    expect(readJsonFile(join(dir, 'bad.json')).kind).toBe('invalid');
    writeJsonAtomic(join(dir, 'good.json'), { a: 1, b: [true] });
    expect(readFileSync(join(dir, 'good.json'), 'utf8')).toBe('{"a":1,"b":[true]}');
    expect(readJsonFile(join(dir, 'good.json'))).toEqual({ kind: 'ok', value: { a: 1, b: [true] } });
  });

  it('parses ISO timestamps like fromisoformat (naive = UTC, microseconds, offsets)', () => {
    const base = Date.UTC(2026, 5, 26, 12, 0, 0);
    expect(parseIsoTimestamp('2026-06-26T12:00:00+00:00')).toBe(base);
    expect(parseIsoTimestamp('2026-06-26T12:00:00Z')).toBe(base);
    expect(parseIsoTimestamp('2026-06-26T12:00:00')).toBe(base);
    expect(parseIsoTimestamp('2026-06-26 14:00:00+02:00')).toBe(base);
    expect(parseIsoTimestamp('2026-06-26T12:00:00.123456+00:00')).toBe(base + 123);
    expect(parseIsoTimestamp('yesterday')).toBeNaN();
    expect(parseIsoTimestamp(12345)).toBeNaN();
    expect(isoUtc(base)).toBe('2026-06-26T12:00:00.000+00:00');
  });
});

describe('home resolution', () => {
  it('defaults to ~/.hermes and honours HERMES_HOME and profiles', () => {
    expect(resolveHome({ env: {} })).toEqual({ home: join(homedir(), '.hermes'), profile: undefined });
    expect(resolveHome({ env: { HERMES_HOME: '  ' } }).home).toBe(join(homedir(), '.hermes'));
    expect(resolveHome({ env: { HERMES_HOME: '/srv/hermes' } }).home).toBe('/srv/hermes');
    expect(resolveHome({ env: { HERMES_HOME: '~/h' } }).home).toBe(join(homedir(), 'h'));
    expect(resolveHome({ env: { HERMES_HOME: '/srv/hermes' }, profile: 'work_1' })).toEqual({
      home: '/srv/hermes/profiles/work_1',
      profile: 'work_1',
    });
    expect(resolveHome({ env: { HERMES_HOME: '/srv/hermes' }, profile: '' }).profile).toBeUndefined();
  });

  it.each(['Work', '-x', '_x', '../etc', 'a/b', 'a'.repeat(65), 'a b'])('rejects profile %j', (name) => {
    expect(() => resolveHome({ env: {}, profile: name })).toThrow(/Invalid profile name/);
  });

  it('accepts a 64-character profile name', () => {
    expect(resolveHome({ env: { HERMES_HOME: '/h' }, profile: `a${'-'.repeat(63)}` }).profile).toHaveLength(
      64,
    );
  });

  it('ensureHome creates the directory tree 0700', () => {
    const dir = tempDir();
    const home = join(dir, 'a', 'b');
    ensureHome(home);
    expect(modeOf(home)).toBe(0o700);
    ensureHome(home); // idempotent
    expect(statSync(home).isDirectory()).toBe(true);
  });
});

describe('.env parsing', () => {
  it('handles comments, export, quotes, escapes and inline comments', () => {
    const text = [
      '# a comment',
      '',
      'PLAIN=value',
      'export EXPORTED=yes',
      '  SPACED_KEY  =  padded  ',
      'WITH_COMMENT=abc # trailing comment',
      'HASH_NO_SPACE=abc#def',
      'EQUALS=a=b=c',
      "SINGLE='literal \\n $HOME # not a comment'",
      'DOUBLE="line1\\nline2\\t\\"q\\" \\\\ end" # comment after',
      'EMPTY=',
      'EMPTY_QUOTED=""',
      'not a valid line',
      '1BAD=starts with digit',
      'DUP=first',
      'DUP=second',
    ].join('\n');
    const parsed = parseEnvFile(text);
    expect({ ...parsed }).toEqual({
      PLAIN: 'value',
      EXPORTED: 'yes',
      SPACED_KEY: 'padded',
      WITH_COMMENT: 'abc',
      HASH_NO_SPACE: 'abc#def',
      EQUALS: 'a=b=c',
      SINGLE: 'literal \\n $HOME # not a comment',
      DOUBLE: 'line1\nline2\t"q" \\ end',
      EMPTY: '',
      EMPTY_QUOTED: '',
      DUP: 'second',
    });
  });

  it('supports CRLF, multi-line quoted values and unterminated quotes', () => {
    expect({ ...parseEnvFile('A=1\r\nB="x"\r\n') }).toEqual({ A: '1', B: 'x' });
    expect({ ...parseEnvFile('KEY="first\nsecond"\nNEXT=n\n') }).toEqual({ KEY: 'first\nsecond', NEXT: 'n' });
    expect({ ...parseEnvFile("KEY='a\nb'\n") }).toEqual({ KEY: 'a\nb' });
    expect({ ...parseEnvFile('KEY="unterminated\nOTHER=1\n') }).toEqual({ KEY: '"unterminated', OTHER: '1' });
  });

  it('treats __proto__ as an ordinary key', () => {
    const parsed = parseEnvFile('__proto__=x\nA=1\n');
    expect(Object.getOwnPropertyDescriptor(parsed, '__proto__')?.value).toBe('x');
    expect(Object.keys(parsed).sort()).toEqual(['A', '__proto__']);
  });

  it('loadEnvFile sets only keys missing from the environment and returns them', () => {
    const dir = tempDir();
    const path = join(dir, '.env');
    writeFileSync(path, 'A=from-file\nB=from-file\nC=from-file\n');
    const env: NodeJS.ProcessEnv = { A: 'from-env', C: '' };
    expect(loadEnvFile(path, env).sort()).toEqual(['B']);
    expect(env).toEqual({ A: 'from-env', B: 'from-file', C: '' });
    expect(loadEnvFile(join(dir, 'missing.env'), env)).toEqual([]);
  });
});

describe('.env saving', () => {
  it('creates a 0600 file (and its directory) for new values', () => {
    const dir = tempDir();
    const path = join(dir, 'home', '.env');
    saveEnvValues(path, { GATEWAY_RELAY_ID: 'gw-1', GATEWAY_RELAY_SECRET: 's3cret value' });
    expect(modeOf(path)).toBe(0o600);
    expect(readFileSync(path, 'utf8')).toBe("GATEWAY_RELAY_ID=gw-1\nGATEWAY_RELAY_SECRET='s3cret value'\n");
  });

  it('merges in place, preserving other lines, comments, order and export prefixes', () => {
    const dir = tempDir();
    const path = join(dir, '.env');
    writeFileSync(
      path,
      [
        '# header',
        'KEEP=1',
        'export REPLACED=old',
        '',
        '# middle',
        'MULTI="a',
        'b"',
        'GONE=x',
        'REPLACED=duplicate',
        'TAIL=t',
        '',
      ].join('\n'),
      { mode: 0o644 },
    );
    chmodSync(path, 0o644);
    saveEnvValues(path, { REPLACED: 'new', MULTI: 'single', GONE: null, ADDED: 'z', IGNORED: undefined });
    expect(readFileSync(path, 'utf8')).toBe(
      [
        '# header',
        'KEEP=1',
        'export REPLACED=new',
        '',
        '# middle',
        'MULTI=single',
        'TAIL=t',
        'ADDED=z',
        '',
      ].join('\n'),
    );
    expect(modeOf(path)).toBe(0o600);
  });

  it('keeps CRLF line endings of an existing file', () => {
    const dir = tempDir();
    const path = join(dir, '.env');
    writeFileSync(path, 'A=1\r\nB=2\r\n');
    saveEnvValues(path, { B: '3' });
    expect(readFileSync(path, 'utf8')).toBe('A=1\r\nB=3\r\n');
  });

  it('rejects invalid keys and NUL characters', () => {
    const dir = tempDir();
    expect(() => saveEnvValues(join(dir, '.env'), { 'BAD KEY': 'x' })).toThrow(/Invalid .env key/);
    expect(() => saveEnvValues(join(dir, '.env'), { OK: 'a\0b' })).toThrow(/NUL/);
  });

  it('quotes values so they read back unchanged', () => {
    expect(formatEnvValue('plain-Value_1.2:3/4@x')).toBe('plain-Value_1.2:3/4@x');
    expect(formatEnvValue('has space')).toBe("'has space'");
    expect(formatEnvValue("it's")).toBe('"it\'s"');
    const dir = tempDir();
    const path = join(dir, '.env');
    const tricky = [
      'a # b',
      'x"y',
      "q'r",
      'back\\slash',
      'multi\nline\r\n',
      ' padded ',
      '$HOME',
      '#hash',
      '',
    ];
    tricky.forEach((value, index) => {
      saveEnvValues(path, { [`K${index}`]: value });
    });
    const parsed = parseEnvFile(readFileSync(path, 'utf8'));
    tricky.forEach((value, index) => {
      expect(parsed[`K${index}`]).toBe(value);
    });
  });

  it('round-trips arbitrary strings (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (value) => {
        fc.pre(!value.includes('\0'));
        const parsed = parseEnvFile(`KEY=${formatEnvValue(value)}\nAFTER=1\n`);
        return parsed.KEY === value && parsed.AFTER === '1';
      }),
      { numRuns: 300 },
    );
  });
});

describe('gateway config', () => {
  function homeWith(yaml?: string): string {
    const home = tempDir();
    if (yaml !== undefined) writeFileSync(join(home, 'config.yaml'), yaml);
    return home;
  }

  const FULL_YAML = [
    'gateway:',
    '  relay_url: wss://cfg.example/relay/',
    '  relay_id: gw-cfg',
    '  relay_secret: cfg-secret',
    '  relay_delivery_key: cfg-delivery',
    '  relay_inbound_host: 10.0.0.1',
    '  relay_inbound_port: 9091',
    '  relay_endpoint: https://cfg.example/in/',
    '  relay_route_keys: [guild-1, 42]',
    '  group_sessions_per_user: false',
    '  thread_sessions_per_user: true',
    'agent:',
    '  model: cfg-model',
    '  restart_drain_timeout: 90',
    '',
  ].join('\n');

  const FULL_ENV: NodeJS.ProcessEnv = {
    GATEWAY_RELAY_URL: 'wss://env.example/relay/',
    GATEWAY_RELAY_ID: 'gw-env',
    GATEWAY_RELAY_SECRET: 'env-secret',
    GATEWAY_RELAY_DELIVERY_KEY: 'env-delivery',
    GATEWAY_RELAY_INBOUND_HOST: '0.0.0.0',
    GATEWAY_RELAY_INBOUND_PORT: '8081',
    GATEWAY_RELAY_ENDPOINT: 'https://env.example/in//',
    GATEWAY_RELAY_ROUTE_KEYS: 'guild-1, guild-2 ,, guild-3',
    HERMES_MODEL: 'env-model',
    HERMES_RESTART_DRAIN_TIMEOUT: '30',
  };

  // [field, value with env set, value from config.yaml only, default]
  const PRECEDENCE: [keyof GatewayConfig, unknown, unknown, unknown][] = [
    ['relayUrl', 'wss://env.example/relay', 'wss://cfg.example/relay', undefined],
    ['relayId', 'gw-env', 'gw-cfg', undefined],
    ['relaySecret', 'env-secret', 'cfg-secret', undefined],
    ['deliveryKey', 'env-delivery', 'cfg-delivery', undefined],
    ['inboundHost', '0.0.0.0', '10.0.0.1', '127.0.0.1'],
    ['inboundPort', 8081, 9091, undefined],
    ['endpoint', 'https://env.example/in', 'https://cfg.example/in', ''],
    ['routeKeys', ['guild-1', 'guild-2', 'guild-3'], ['guild-1', '42'], []],
    ['model', 'env-model', 'cfg-model', 'gpt-4o-mini'],
    ['restartDrainTimeoutSeconds', 30, 90, 180],
  ];

  it.each(PRECEDENCE)(
    '%s: env wins over config.yaml, which wins over the default',
    (field, fromEnv, fromCfg, dflt) => {
      expect(loadGatewayConfig({ home: homeWith(FULL_YAML), env: FULL_ENV })[field]).toEqual(fromEnv);
      expect(loadGatewayConfig({ home: homeWith(FULL_YAML), env: {} })[field]).toEqual(fromCfg);
      expect(loadGatewayConfig({ home: homeWith(), env: {} })[field]).toEqual(dflt);
    },
  );

  it('platforms.relay.enabled: false vetoes the relay, even an env URL (current §14 case 53)', () => {
    const env = { GATEWAY_RELAY_URL: 'wss://env.example/relay' };
    const vetoes: [string, string][] = [
      ['platforms:\n  relay:\n    enabled: false\n', 'platforms.relay.enabled'],
      ['gateway:\n  platforms:\n    relay:\n      enabled: false\n', 'gateway.platforms.relay.enabled'],
      ['platforms:\n  relay:\n    enabled: "false"\n', 'platforms.relay.enabled'],
    ];
    for (const [yaml, path] of vetoes) {
      const config = loadGatewayConfig({ home: homeWith(yaml), env });
      expect(config.relayUrl, yaml).toBeUndefined();
      expect(config.relayDisabledBy, yaml).toBe(path);
    }
    // No `enabled` key, or `enabled: true`: the URL alone activates the relay.
    for (const yaml of ['platforms:\n  relay: {}\n', 'platforms:\n  relay:\n    enabled: true\n', '']) {
      const config = loadGatewayConfig({ home: homeWith(yaml), env });
      expect(config.relayUrl, yaml).toBe('wss://env.example/relay');
      expect(config.relayDisabledBy, yaml).toBeUndefined();
    }
  });

  it('blank env values fall through to config.yaml', () => {
    const blank = Object.fromEntries(Object.keys(FULL_ENV).map((key) => [key, '  ']));
    const config = loadGatewayConfig({ home: homeWith(FULL_YAML), env: blank });
    for (const [field, , fromCfg] of PRECEDENCE) expect(config[field]).toEqual(fromCfg);
  });

  it('session flags come from config.yaml with defaults true / false', () => {
    const config = loadGatewayConfig({ home: homeWith(FULL_YAML), env: {} });
    expect([config.groupSessionsPerUser, config.threadSessionsPerUser]).toEqual([false, true]);
    const defaults = loadGatewayConfig({ home: homeWith(), env: {} });
    expect([defaults.groupSessionsPerUser, defaults.threadSessionsPerUser]).toEqual([true, false]);
    const strings = loadGatewayConfig({
      home: homeWith('gateway:\n  group_sessions_per_user: "no"\n  thread_sessions_per_user: "yes"\n'),
      env: {},
    });
    expect([strings.groupSessionsPerUser, strings.threadSessionsPerUser]).toEqual([false, true]);
  });

  it('env-only keys and their defaults', () => {
    const home = homeWith();
    const defaults = loadGatewayConfig({ home, env: {} });
    expect(defaults).toMatchObject({
      enrollToken: undefined,
      platform: 'relay',
      botId: '',
      managed: false,
      portalToken: undefined,
      agent: 'echo',
      openaiBaseUrl: 'https://api.openai.com/v1',
      openaiApiKey: undefined,
      agentCommand: undefined,
      dashboardDrainSecret: undefined,
      warnings: [],
    });
    const set = loadGatewayConfig({
      home,
      env: {
        GATEWAY_RELAY_ENROLL_TOKEN: 'enroll-tok',
        GATEWAY_RELAY_PLATFORM: 'telegram',
        GATEWAY_RELAY_BOT_ID: 'bot-7',
        HERMES_PORTAL_TOKEN: 'portal-tok',
        HERMES_AGENT: 'OpenAI',
        OPENAI_BASE_URL: 'http://localhost:11434/v1/',
        OPENAI_API_KEY: 'sk-test',
        HERMES_DASHBOARD_DRAIN_SECRET: 'drain-secret',
      },
    });
    expect(set).toMatchObject({
      enrollToken: 'enroll-tok',
      platform: 'telegram',
      botId: 'bot-7',
      portalToken: 'portal-tok',
      agent: 'openai',
      openaiBaseUrl: 'http://localhost:11434/v1',
      openaiApiKey: 'sk-test',
      dashboardDrainSecret: 'drain-secret',
    });
    const command = loadGatewayConfig({
      home,
      env: { HERMES_AGENT: 'command', HERMES_AGENT_COMMAND: './bot.sh' },
    });
    expect([command.agent, command.agentCommand]).toEqual(['command', './bot.sh']);
  });

  it('rejects an unknown agent and a command agent without a command', () => {
    const home = homeWith();
    expect(() => loadGatewayConfig({ home, env: { HERMES_AGENT: 'gpt' } })).toThrow(GatewayConfigError);
    expect(() => loadGatewayConfig({ home, env: { HERMES_AGENT: 'gpt' } })).toThrow(
      /HERMES_AGENT must be one of echo, openai, command/,
    );
    expect(() => loadGatewayConfig({ home, env: { HERMES_AGENT: 'command' } })).toThrow(
      /HERMES_AGENT_COMMAND/,
    );
  });

  it('whitespace-only secrets count as unset', () => {
    const home = homeWith('gateway:\n  relay_secret: cfg-secret\n  relay_delivery_key: "   "\n');
    const config = loadGatewayConfig({
      home,
      env: {
        GATEWAY_RELAY_SECRET: '   ',
        GATEWAY_RELAY_DELIVERY_KEY: '\t',
        HERMES_PORTAL_TOKEN: ' ',
        OPENAI_API_KEY: '  ',
        HERMES_DASHBOARD_DRAIN_SECRET: '\n',
        GATEWAY_RELAY_ENROLL_TOKEN: ' ',
      },
    });
    expect(config.relaySecret).toBe('cfg-secret');
    expect(config.deliveryKey).toBeUndefined();
    expect(config.portalToken).toBeUndefined();
    expect(config.openaiApiKey).toBeUndefined();
    expect(config.dashboardDrainSecret).toBeUndefined();
    expect(config.enrollToken).toBeUndefined();
  });

  it.each([
    ['unset', undefined, undefined],
    ['zero', '0', undefined],
    ['not an int', 'abc', undefined],
    ['fractional', '80.5', undefined],
    ['out of range', '70000', undefined],
    ['valid', ' 8642 ', 8642],
  ])('inbound port %s', (_name, value, expected) => {
    const env = value === undefined ? {} : { GATEWAY_RELAY_INBOUND_PORT: value };
    expect(loadGatewayConfig({ home: homeWith(), env }).inboundPort).toBe(expected);
  });

  it('an invalid env port wins over a valid config port (receiver disabled) and warns', () => {
    const config = loadGatewayConfig({
      home: homeWith('gateway:\n  relay_inbound_port: 9000\n'),
      env: { GATEWAY_RELAY_INBOUND_PORT: 'abc' },
    });
    expect(config.inboundPort).toBeUndefined();
    expect(config.warnings.join('\n')).toMatch(/inbound receiver disabled/);
  });

  it('parses route keys from env, YAML lists and YAML comma strings', () => {
    const fromString = loadGatewayConfig({
      home: homeWith('gateway:\n  relay_route_keys: "a, b ,, c"\n'),
      env: {},
    });
    expect(fromString.routeKeys).toEqual(['a', 'b', 'c']);
    const fromList = loadGatewayConfig({
      home: homeWith('gateway:\n  relay_route_keys:\n    - " x "\n    - ""\n    - 7\n'),
      env: {},
    });
    expect(fromList.routeKeys).toEqual(['x', '7']);
    const fromEnv = loadGatewayConfig({
      home: homeWith('gateway:\n  relay_route_keys: [cfg]\n'),
      env: { GATEWAY_RELAY_ROUTE_KEYS: ' , ' },
    });
    expect(fromEnv.routeKeys).toEqual([]);
  });

  it('drain timeout: blank or invalid falls back to the default; 0 is allowed', () => {
    const home = homeWith('agent:\n  restart_drain_timeout: 90\n');
    expect(
      loadGatewayConfig({ home, env: { HERMES_RESTART_DRAIN_TIMEOUT: '' } }).restartDrainTimeoutSeconds,
    ).toBe(90);
    const invalid = loadGatewayConfig({ home, env: { HERMES_RESTART_DRAIN_TIMEOUT: 'soon' } });
    expect(invalid.restartDrainTimeoutSeconds).toBe(180);
    expect(invalid.warnings.join('\n')).toMatch(/HERMES_RESTART_DRAIN_TIMEOUT/);
    expect(
      loadGatewayConfig({ home, env: { HERMES_RESTART_DRAIN_TIMEOUT: '-1' } }).restartDrainTimeoutSeconds,
    ).toBe(180);
    expect(
      loadGatewayConfig({ home, env: { HERMES_RESTART_DRAIN_TIMEOUT: '0' } }).restartDrainTimeoutSeconds,
    ).toBe(0);
    expect(
      loadGatewayConfig({ home: homeWith('agent:\n  restart_drain_timeout: later\n'), env: {} })
        .restartDrainTimeoutSeconds,
    ).toBe(180);
  });

  it('detects managed installs from HERMES_MANAGED or a .managed file', () => {
    const home = homeWith();
    for (const value of ['1', 'true', 'YES', ' yes ']) {
      expect(loadGatewayConfig({ home, env: { HERMES_MANAGED: value } }).managed).toBe(true);
    }
    for (const value of ['0', 'false', 'no', '', 'managed']) {
      expect(loadGatewayConfig({ home, env: { HERMES_MANAGED: value } }).managed).toBe(false);
    }
    writeFileSync(join(home, '.managed'), '');
    expect(loadGatewayConfig({ home, env: {} }).managed).toBe(true);
    expect(loadGatewayConfig({ home, env: { HERMES_MANAGED: '0' } }).managed).toBe(true);
  });

  it('portal token: env wins over auth.json access_token', () => {
    const home = homeWith();
    writeFileSync(join(home, 'auth.json'), JSON.stringify({ access_token: 'file-token' }));
    expect(loadGatewayConfig({ home, env: {} }).portalToken).toBe('file-token');
    expect(loadGatewayConfig({ home, env: { HERMES_PORTAL_TOKEN: 'env-token' } }).portalToken).toBe(
      'env-token',
    );
    writeFileSync(join(home, 'auth.json'), '{broken');
    const broken = loadGatewayConfig({ home, env: {} });
    expect(broken.portalToken).toBeUndefined();
    expect(broken.warnings.join('\n')).toMatch(/auth\.json/);
  });

  it('a malformed config.yaml is a GatewayConfigError naming the file and line', () => {
    const home = homeWith('gateway:\n  relay_url: wss://x\n  relay_url: wss://y\n');
    let error: unknown;
    try {
      loadGatewayConfig({ home, env: {} });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(GatewayConfigError);
    const configError = error as GatewayConfigError;
    expect(configError.message).toContain(join(home, 'config.yaml'));
    expect(configError.message).toMatch(/line 3/);
    expect(configError.line).toBe(3);
    expect(configError.message).not.toContain('\n');
  });

  it.each([
    ['a list at the top level', '- a\n- b\n', 1],
    ['gateway that is not a mapping', 'x: 1\ngateway: 5\n', 2],
    ['a mapping where a value belongs', 'gateway:\n  relay_url:\n    nested: 1\n', 3],
    ['a non-boolean session flag', 'gateway:\n  group_sessions_per_user: maybe\n', 2],
    ['an unterminated flow list', 'gateway:\n  relay_route_keys: [a, b\n', 3],
  ])('rejects %s with its line', (_name, yaml, line) => {
    const home = homeWith(yaml);
    expect(() => loadGatewayConfig({ home, env: {} })).toThrow(GatewayConfigError);
    try {
      loadGatewayConfig({ home, env: {} });
    } catch (error) {
      expect((error as GatewayConfigError).line).toBe(line);
      expect((error as GatewayConfigError).file).toBe(join(home, 'config.yaml'));
    }
  });

  it('an empty or comment-only config.yaml is fine', () => {
    expect(loadGatewayConfig({ home: homeWith(''), env: {} }).relayUrl).toBeUndefined();
    expect(loadGatewayConfig({ home: homeWith('# nothing\n'), env: {} }).inboundHost).toBe('127.0.0.1');
    expect(loadGatewayConfig({ home: homeWith('gateway:\n'), env: {} }).routeKeys).toEqual([]);
  });

  it('redactConfig hides every secret and URL credentials', () => {
    const config = loadGatewayConfig({
      home: homeWith(FULL_YAML),
      env: {
        ...FULL_ENV,
        GATEWAY_RELAY_URL: 'wss://user:pw@env.example/relay',
        GATEWAY_RELAY_ENROLL_TOKEN: 'enroll-tok',
        HERMES_PORTAL_TOKEN: 'portal-tok',
        OPENAI_API_KEY: 'sk-test',
      },
    });
    const redacted = redactConfig(config);
    const text = JSON.stringify(redacted);
    for (const secret of ['env-secret', 'env-delivery', 'enroll-tok', 'portal-tok', 'sk-test', 'pw@']) {
      expect(text).not.toContain(secret);
    }
    expect(redacted.relaySecret).toBe('(set)');
    expect(redacted.dashboardDrainSecret).toBe('(unset)');
    expect(redacted.relayUrl).toContain('env.example');
    expect(redacted.relayId).toBe('gw-env');
    expect(config.relaySecret).toBe('env-secret'); // the original is untouched
  });

  it('does not read .env by itself (the caller loads it into env first)', () => {
    const home = homeWith();
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, '.env'), 'GATEWAY_RELAY_ID=from-dotenv\n');
    expect(loadGatewayConfig({ home, env: {} }).relayId).toBeUndefined();
    const env: NodeJS.ProcessEnv = {};
    loadEnvFile(join(home, '.env'), env);
    expect(loadGatewayConfig({ home, env }).relayId).toBe('from-dotenv');
  });
});
