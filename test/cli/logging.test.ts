import { afterEach, describe, expect, it } from 'vitest';
import { CliError } from '../../src/cli/errors.js';
import {
  configureLogging,
  createLogger,
  logLevelFor,
  prettyLine,
  redactUrlsIn,
} from '../../src/cli/logger.js';

/** The logger in process: format choice, redaction, level precedence (no child processes). */

function capture(): { lines: string[]; write: (line: string) => void } {
  const lines: string[] = [];
  return { lines, write: (line: string) => void lines.push(line) };
}

afterEach(() => configureLogging({}));

describe('format', () => {
  it('is pretty on a terminal and JSON otherwise (auto), and forced by the format option', () => {
    const tty = capture();
    createLogger('info', 'gateway', { isTTY: true, destination: tty, color: false })
      .child({ part: 'sessions' })
      .info({ session: 'agent:main:x', n: 3, tags: ['a', 'b'], note: 'two words' }, 'turn started');
    expect(tty.lines).toHaveLength(1);
    expect(tty.lines[0]).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} INFO {2}gateway\/sessions turn started session=agent:main:x n=3 tags=\["a","b"\] note="two words"\n$/,
    );

    const piped = capture();
    createLogger('info', 'gateway', { isTTY: false, destination: piped }).info({ n: 1 }, 'hello');
    const entry = JSON.parse(piped.lines[0] as string) as Record<string, unknown>;
    expect(entry).toMatchObject({ level: 30, name: 'gateway', n: 1, msg: 'hello' });

    const forcedJson = capture();
    createLogger('info', 'x', { isTTY: true, format: 'json', destination: forcedJson }).info('j');
    expect(() => JSON.parse(forcedJson.lines[0] as string)).not.toThrow();
    const forcedPretty = capture();
    createLogger('info', 'x', { isTTY: false, format: 'pretty', destination: forcedPretty }).warn('p');
    expect(forcedPretty.lines[0]).toMatch(/ WARN {2}x p\n$/);
  });

  it('takes --log-format from the global flag when the caller does not choose', () => {
    configureLogging({ format: 'pretty' });
    const out = capture();
    createLogger('info', 'x', { isTTY: false, destination: out }).info('m');
    expect(out.lines[0]).toMatch(/ INFO {2}x m\n$/);
  });

  it('colours only when asked, and passes a non-JSON line through', () => {
    const line = JSON.stringify({ level: 50, time: 0, name: 'c', msg: 'boom' });
    expect(prettyLine(line, true)).toContain('\u001b[31mERROR');
    expect(prettyLine(line, false)).not.toContain('\u001b[');
    expect(prettyLine('not json', false)).toBe('not json\n');
  });
});

describe('redaction', () => {
  const secrets = {
    bearer: 'Bearer tok-AAAA1111bearer',
    cookie: 'hermes_session=cookie-BBBB2222',
    token: 'tok-CCCC3333token',
    secret: 'sec-DDDD4444secret',
    password: 'pw-EEEE5555password',
    apiKey: 'sk-FFFF6666apikey',
    dbPassword: 'pa55word',
    redisPassword: 'r3dispass',
  };

  it('cuts every kind of secret out of the fields and masks URL credentials, in both formats', () => {
    for (const format of ['json', 'pretty'] as const) {
      const out = capture();
      const log = createLogger('info', 'connector', { format, destination: out, color: false });
      log.info({ headers: { authorization: secrets.bearer, cookie: secrets.cookie } }, 'request');
      log.info({ req: { headers: { authorization: secrets.bearer } } }, 'nested request');
      log.info({ authorization: secrets.bearer, token: secrets.token, secret: secrets.secret }, 'top');
      log.info(
        { gateway: { token: secrets.token, secret: secrets.secret, password: secrets.password } },
        'deep',
      );
      log.info({ Password: secrets.password, 'X-Api-Key': secrets.apiKey }, 'keys');
      log.info({ db: `postgres://relay:${secrets.dbPassword}@127.0.0.1:5432/relay` }, 'store');
      log.info({ store: { url: `redis://:${secrets.redisPassword}@127.0.0.1:6379` } }, 'bus');
      log.warn(
        { err: `cannot reach postgres://relay:${secrets.dbPassword}@db.internal/relay: refused` },
        'failed',
      );
      log.error(`cannot open postgres://relay:${secrets.dbPassword}@127.0.0.1/x (message text)`);
      log.error({ err: new Error('kept as an error') }, 'an Error object is serialised as before');
      const text = out.lines.join('');
      expect(out.lines).toHaveLength(10);
      expect(text).toContain('kept as an error');
      for (const [kind, value] of Object.entries(secrets))
        expect(text, `${format}: ${kind} leaked`).not.toContain(value);
      expect(text).toContain('postgres://relay:***@127.0.0.1:5432/relay');
      expect(text).toContain('redis://:***@127.0.0.1:6379');
      expect(text).toContain('postgres://relay:***@db.internal/relay');
      expect(text).toContain('[redacted]');
    }
  });

  it('leaves URLs without credentials and ordinary fields alone', () => {
    const out = capture();
    createLogger('info', 'c', { format: 'json', destination: out }).info(
      { url: 'http://127.0.0.1:8700', db: '/var/lib/relay/connector.db', session: 'abc' },
      'see https://example.test/path',
    );
    expect(JSON.parse(out.lines[0] as string)).toMatchObject({
      url: 'http://127.0.0.1:8700',
      db: '/var/lib/relay/connector.db',
      session: 'abc',
      msg: 'see https://example.test/path',
    });
    expect(redactUrlsIn('x postgres://u:p@h/d y')).toBe('x postgres://u:***@h/d y');
  });
});

describe('level', () => {
  it('--log-level beats -v/-q, which beat HERMES_LOG_LEVEL, which beats the older RELAY_LOG_LEVEL', () => {
    const env = { HERMES_LOG_LEVEL: 'warn', RELAY_LOG_LEVEL: 'debug' };
    expect(logLevelFor('connector', undefined, { env: {} })).toBe('info');
    expect(logLevelFor('connector', undefined, { env: { RELAY_LOG_LEVEL: 'debug' } })).toBe('debug');
    expect(logLevelFor('gateway', undefined, { env: { RELAY_LOG_LEVEL: 'debug' } })).toBe('info');
    expect(logLevelFor('connector', undefined, { env })).toBe('warn');
    expect(logLevelFor('dashboard', undefined, { env: { HERMES_LOG_LEVEL: ' ERROR ' } })).toBe('error');
    expect(logLevelFor('gateway', 'debug', { env })).toBe('debug');
    configureLogging({ level: 'trace' });
    expect(logLevelFor('gateway', 'warn', { env })).toBe('trace');
  });

  it('a bad level is one line with the exit code asked for (2 by default)', () => {
    expect(() => configureLogging({ level: 'loud' })).toThrow(/--log-level must be one of .*"loud"/);
    expect(() => configureLogging({ format: 'xml' })).toThrow(/--log-format must be one of/);
    const bad = (() => {
      try {
        logLevelFor('connector', undefined, { env: { RELAY_LOG_LEVEL: 'chatty' } });
      } catch (error) {
        return error;
      }
    })();
    expect(bad).toBeInstanceOf(CliError);
    expect((bad as CliError).exitCode).toBe(2);
    expect((bad as CliError).message).toBe(
      'RELAY_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "chatty"',
    );
    expect(() => logLevelFor('gateway', undefined, { env: { HERMES_LOG_LEVEL: 'x' }, exitCode: 78 })).toThrow(
      expect.objectContaining({ exitCode: 78 }),
    );
  });

  it('the level is honoured: below it nothing is written', () => {
    const out = capture();
    const log = createLogger('warn', 'c', { format: 'json', destination: out });
    log.info('quiet');
    log.warn('loud');
    expect(out.lines).toHaveLength(1);
    expect(out.lines[0]).toContain('loud');
  });
});
