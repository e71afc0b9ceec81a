import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { serviceSuffix, unitDirectory, unitNameFor } from '../../src/gateway/service/identity.js';
import { isLegacyGatewayUnit } from '../../src/gateway/service/legacy.js';
import {
  environmentLine,
  quoteExecArg,
  renderUnit,
  timeoutStopSeconds,
  unitSetting,
  unitTimeoutStopSeconds,
} from '../../src/gateway/service/unit.js';
import { tempDir } from '../support/processes.js';

describe('service identity', () => {
  const dir = tempDir('service-identity');
  let savedHome: string | undefined;

  beforeEach(() => {
    savedHome = process.env.HOME;
    process.env.HOME = dir.path;
  });
  afterEach(() => {
    process.env.HOME = savedHome;
  });
  afterAll(() => dir.remove());

  it('names the default home hermes-gateway.service and a profile hermes-gateway-<name>.service', () => {
    mkdirSync(join(dir.path, '.hermes', 'profiles', 'work'), { recursive: true });
    expect(unitNameFor(join(dir.path, '.hermes'))).toBe('hermes-gateway.service');
    expect(unitNameFor(join(dir.path, '.hermes', 'profiles', 'work'))).toBe('hermes-gateway-work.service');
  });

  it('gives any other home the first 8 hex digits of sha256(path), so two homes never share a unit', () => {
    const custom = join(dir.path, 'elsewhere');
    mkdirSync(custom, { recursive: true });
    const expected = createHash('sha256').update(custom).digest('hex').slice(0, 8);
    expect(serviceSuffix(custom)).toBe(expected);
    expect(serviceSuffix(join(dir.path, 'other'))).not.toBe(expected);
  });

  it('takes the unit directories from the overrides, else the systemd defaults', () => {
    expect(unitDirectory('user', { HERMES_SYSTEMD_USER_DIR: '/x/user' })).toBe('/x/user');
    expect(unitDirectory('system', { HERMES_SYSTEMD_SYSTEM_DIR: '/x/system' })).toBe('/x/system');
    expect(unitDirectory('system', {})).toBe('/etc/systemd/system');
    expect(unitDirectory('user', {})).toBe(join(dir.path, '.config', 'systemd', 'user'));
  });
});

describe('unit file', () => {
  it('TimeoutStopSec is max(60, drain) + 30', () => {
    expect(timeoutStopSeconds(180)).toBe(210);
    expect(timeoutStopSeconds(10)).toBe(90);
    expect(timeoutStopSeconds(0)).toBe(90);
    expect(timeoutStopSeconds(60.2)).toBe(91);
  });

  it('quotes ExecStart words and escapes systemd specifiers and variables', () => {
    expect(quoteExecArg('/usr/bin/node')).toBe('/usr/bin/node');
    expect(quoteExecArg('/opt/my app/main.js')).toBe('"/opt/my app/main.js"');
    expect(quoteExecArg('100%')).toBe('100%%');
    expect(quoteExecArg('$HOME')).toBe('$$HOME');
    expect(quoteExecArg('a"b')).toBe('"a\\"b"');
    expect(() => quoteExecArg('a\nb')).toThrow();
    expect(environmentLine('HERMES_HOME', '/srv/hermes')).toBe('Environment=HERMES_HOME=/srv/hermes');
    expect(environmentLine('HERMES_HOME', '/srv/my hermes')).toBe('Environment="HERMES_HOME=/srv/my hermes"');
  });

  it('renders the June 2026 essentials and reads TimeoutStopSec back', () => {
    const text = renderUnit({
      scope: 'system',
      execStart: ['/usr/bin/node', '/app/main.js', '--profile', 'work', 'gateway', 'run', '--replace'],
      environment: [['HERMES_HOME', '/srv/hermes']],
      drainSeconds: 180,
      description: 'test',
      user: 'hermes',
    });
    expect(unitSetting(text, 'ExecStart')).toBe(
      '/usr/bin/node /app/main.js --profile work gateway run --replace',
    );
    expect(unitSetting(text, 'User')).toBe('hermes');
    expect(unitSetting(text, 'RestartForceExitStatus')).toBe('75');
    expect(unitSetting(text, 'ExecReload')).toBe('/bin/kill -USR1 $MAINPID');
    expect(unitSetting(text, 'WantedBy')).toBe('multi-user.target');
    expect(unitSetting(text, 'ExecStop')).toBeUndefined();
    expect(unitTimeoutStopSeconds(text)).toBe(210);
    expect(unitTimeoutStopSeconds('TimeoutStopSec=1min 30s')).toBe(90);
  });

  it('recognises a legacy unit only when it runs a hermes gateway', () => {
    expect(
      isLegacyGatewayUnit('[Service]\nExecStart=/venv/bin/python -m hermes_cli.main gateway run\n'),
    ).toBe(true);
    expect(isLegacyGatewayUnit('[Service]\nExecStart=/usr/bin/hermes-mailer --daemon\n')).toBe(false);
  });
});
