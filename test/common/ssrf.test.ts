import { describe, expect, it } from 'vitest';
import {
  checkFetchTarget,
  checkTargetUrl,
  isNonPublicAddress,
  parsePrivateTargets,
  type Resolver,
  TargetGuard,
  targetUrlProblem,
  widerPrivateTargets,
} from '../../src/common/ssrf.js';

/** Never sent anywhere: a resolver stub answers for every name (and counts its calls). */
function stub(table: Record<string, string[]>): Resolver & { calls: string[] } {
  const calls: string[] = [];
  const resolve = async (host: string) => {
    calls.push(host);
    const answers = table[host];
    if (!answers) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return answers.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return Object.assign(resolve, { calls });
}

const names = stub({
  'public.example': ['93.184.216.34'],
  'public6.example': ['2606:4700:4700::1111'],
  'private.example': ['10.0.0.7'],
  'mixed.example': ['93.184.216.34', '192.168.1.20'],
  'loop.example': ['127.0.0.1'],
  'mapped.example': ['::ffff:127.0.0.1'],
});

describe('the SSRF rule (common/ssrf.ts)', () => {
  it('lets public addresses and names through; refuses every non-public range, literal or resolved', async () => {
    for (const host of ['93.184.216.34', '[2606:4700:4700::1111]', 'public.example', 'public6.example'])
      expect(await checkFetchTarget(host, { allowPrivate: 'none', resolve: names }), host).toMatchObject({
        ok: true,
      });
    for (const host of [
      '10.1.2.3',
      '127.0.0.1',
      '169.254.169.254',
      '172.16.5.4',
      '192.168.0.1',
      '100.64.0.1',
      '0.0.0.0',
      '[::1]',
      '[fd00::1]',
      '[fe80::1]',
      '[::ffff:127.0.0.1]',
      '[::ffff:10.0.0.1]',
      // What a URL makes of [::ffff:127.0.0.1], and the IPv4-compatible form.
      new URL('http://[::ffff:127.0.0.1]/').hostname,
      '[::127.0.0.1]',
    ]) {
      const verdict = await checkFetchTarget(host, { allowPrivate: 'none', resolve: names });
      expect(verdict, host).toMatchObject({
        ok: false,
        reason: expect.stringContaining('not a public address'),
      });
    }
    expect(await checkFetchTarget('private.example', { allowPrivate: 'none', resolve: names })).toEqual({
      ok: false,
      reason: 'private.example resolves to a non-public address',
      address: '10.0.0.7',
    });
    // One private address among public ones is enough to refuse the name.
    expect(await checkFetchTarget('mixed.example', { allowPrivate: 'none', resolve: names })).toMatchObject({
      ok: false,
      address: '192.168.1.20',
    });
    expect(await checkFetchTarget('mapped.example', { allowPrivate: 'none', resolve: names })).toMatchObject({
      ok: false,
    });
    expect(isNonPublicAddress('fd12:3456::1')).toBe(true);
    // Forms that embed or reach IPv4 (review L3): IPv4-translated, local-use NAT64, 6to4, site-local.
    for (const address of ['::ffff:0:7f00:1', '64:ff9b:1::a00:1', '2002:7f00:1::', 'fec0::1'])
      expect(isNonPublicAddress(address), address).toBe(true);
    expect(isNonPublicAddress('2001:4860:4860::8888')).toBe(false);
    expect(await checkFetchTarget('nowhere.example', { allowPrivate: 'none', resolve: names })).toEqual({
      ok: false,
      reason: 'cannot resolve nowhere.example',
      unresolved: true,
    });
  });

  it('an allow-list lets exactly its addresses through (127.0.0.1 yes, 10.0.0.1 no); 1 allows all', async () => {
    const list = parsePrivateTargets('127.0.0.1/32, ::1');
    expect(await checkFetchTarget('127.0.0.1', { allowPrivate: list })).toMatchObject({ ok: true });
    expect(await checkFetchTarget('[::1]', { allowPrivate: list })).toMatchObject({ ok: true });
    expect(await checkFetchTarget('[::ffff:127.0.0.1]', { allowPrivate: list })).toMatchObject({ ok: true });
    expect(await checkFetchTarget('[::ffff:7f00:1]', { allowPrivate: list })).toMatchObject({ ok: true });
    expect(await checkFetchTarget('loop.example', { allowPrivate: list, resolve: names })).toMatchObject({
      ok: true,
      address: '127.0.0.1',
    });
    expect(await checkFetchTarget('127.0.0.2', { allowPrivate: list })).toMatchObject({ ok: false });
    expect(await checkFetchTarget('10.0.0.1', { allowPrivate: list })).toMatchObject({ ok: false });
    expect(await checkFetchTarget('private.example', { allowPrivate: list, resolve: names })).toMatchObject({
      ok: false,
    });
    // Public addresses stay allowed whatever the list says.
    expect(await checkFetchTarget('public.example', { allowPrivate: list, resolve: names })).toMatchObject({
      ok: true,
    });
    const blocks = parsePrivateTargets('10.0.0.0/8');
    expect(await checkFetchTarget('10.200.0.1', { allowPrivate: blocks })).toMatchObject({ ok: true });
    expect(await checkFetchTarget('127.0.0.1', { allowPrivate: blocks })).toMatchObject({ ok: false });
    expect(await checkFetchTarget('10.0.0.1', { allowPrivate: parsePrivateTargets('1') })).toMatchObject({
      ok: true,
    });
  });

  it('parses the setting: unset/empty/0 none, 1 all, a list; a bad entry is one line naming it', () => {
    expect(parsePrivateTargets(undefined)).toBe('none');
    expect(parsePrivateTargets(' ')).toBe('none');
    expect(parsePrivateTargets('0')).toBe('none');
    expect(parsePrivateTargets('1')).toBe('all');
    expect(parsePrivateTargets('127.0.0.1/32,10.0.0.0/8')).toMatchObject({ text: '127.0.0.1/32,10.0.0.0/8' });
    for (const bad of ['yes', 'localhost', '10.0.0.0/33', '10.0.0.1/8/2', 'fd00::/129', '1,2']) {
      let message = '';
      try {
        parsePrivateTargets(bad);
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message, bad).toMatch(/^must be 1 \(every private address\) or a comma-separated list/);
      expect(message, bad).not.toContain('\n');
    }
    expect(widerPrivateTargets('none', true)).toBe(true);
    expect(widerPrivateTargets('all', false)).toBe('all');
    const list = parsePrivateTargets('10.0.0.0/8');
    expect(widerPrivateTargets(list, false)).toBe(list);
    expect(widerPrivateTargets(list, true)).toBe(true);
  });

  it('refuses non-http(s) URLs and URLs with credentials without repeating the URL', async () => {
    expect(targetUrlProblem('https://gw.example/hook')).toBeUndefined();
    expect(targetUrlProblem('file:///etc/passwd')).toBe('must be an http:// or https:// URL');
    expect(targetUrlProblem('gopher://gw.example/')).toBe('must be an http:// or https:// URL');
    expect(targetUrlProblem('http://user:hunter2@gw.example/')).toBe(
      'must not carry credentials (user:password@)',
    );
    expect(targetUrlProblem('not a url')).toBe('is not a URL');
    const options = { allowPrivate: 'none' as const, resolve: names };
    expect(await checkTargetUrl('http://admin:s3cret@public.example/', options)).toEqual({
      reason: 'must not carry credentials (user:password@)',
      nonPublic: false,
    });
    expect(await checkTargetUrl('http://127.0.0.1:8080/hook', options)).toEqual({
      reason: '127.0.0.1 is not a public address',
      nonPublic: true,
    });
    expect(await checkTargetUrl('https://private.example/hook', options)).toMatchObject({ nonPublic: true });
    expect(await checkTargetUrl('https://public.example/hook', options)).toBeUndefined();
    // Registration lets a name that does not resolve yet through: every connection checks it again.
    expect(await checkTargetUrl('https://later.example/hook', options)).toBeUndefined();
    const hanging: Resolver = () => new Promise(() => undefined);
    expect(
      await checkTargetUrl('https://slow.example/', {
        allowPrivate: 'none',
        resolve: hanging,
        timeoutMs: 10,
      }),
    ).toBeUndefined();
  });

  it('the guard keeps a verdict per host for its TTL, shares one resolution, and judges again after it', async () => {
    let clock = 10_000; // (lru-cache takes a start time of 0 for "no expiry")
    let answer = '93.184.216.34';
    let calls = 0;
    const flipping: Resolver = async () => {
      calls++;
      return [{ address: answer, family: 4 }];
    };
    const guard = new TargetGuard({
      allowPrivate: 'none',
      resolve: flipping,
      ttlMs: 1_000,
      now: () => clock,
    });
    const [a, b] = await Promise.all([guard.check('gw.example'), guard.check('gw.example')]);
    expect(a).toMatchObject({ ok: true, address: '93.184.216.34' });
    expect(b).toEqual(a);
    expect(calls).toBe(1);
    answer = '10.0.0.9';
    clock = 10_999;
    expect(await guard.check('gw.example')).toMatchObject({ ok: true });
    expect(calls).toBe(1);
    clock = 11_001;
    expect(await guard.check('gw.example')).toMatchObject({
      ok: false,
      address: '10.0.0.9',
    });
    expect(calls).toBe(2);
    // Literals are judged without resolving; a failed resolution is not kept.
    expect(guard.known('10.0.0.1')).toMatchObject({ ok: false });
    const failing = new TargetGuard({ allowPrivate: 'none', resolve: names, ttlMs: 1_000, now: () => clock });
    await failing.check('nowhere.example');
    await failing.check('nowhere.example');
    expect(names.calls.filter((host) => host === 'nowhere.example').length).toBeGreaterThanOrEqual(2);
  });
});
