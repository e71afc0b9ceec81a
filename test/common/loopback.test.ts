import { describe, expect, it } from 'vitest';
import { isLoopbackHost } from '../../src/common/loopback.js';
import { isLoopbackBind } from '../../src/dashboard/auth/request-info.js';
import { isLoopbackHost as proxyIsLoopback } from '../../src/proxy/http.js';

describe('the one loopback rule', () => {
  const loopback = ['127.0.0.1', 'localhost', 'LOCALHOST', '::1', '[::1]', ' 127.0.0.1 '];
  // The stricter reading (the reference dashboard's exact set): anything else needs a login or --host.
  const notLoopback = [
    '127.0.0.2',
    '127.8.0.3',
    '::ffff:127.0.0.1',
    '0.0.0.0',
    '::',
    '',
    '192.168.1.2',
    '10.0.0.1',
    'example.com',
    '::2',
  ];

  it('is exactly localhost, 127.0.0.1 and ::1', () => {
    for (const host of loopback) expect(isLoopbackHost(host), host).toBe(true);
    for (const host of notLoopback) expect(isLoopbackHost(host), host).toBe(false);
  });

  it('is the rule the dashboard and the proxy both bind by', () => {
    for (const host of [...loopback, ...notLoopback]) {
      expect(isLoopbackBind(host), host).toBe(isLoopbackHost(host));
      expect(proxyIsLoopback(host), host).toBe(isLoopbackHost(host));
    }
  });
});
