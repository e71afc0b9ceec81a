import { describe, expect, it } from 'vitest';
import { signingKey } from '../../src/connector/delivery-engine.js';
import { EnrollRequestSchema, ProvisionRequestSchema } from '../../src/protocol/index.js';

describe('delivery-key rotation', () => {
  const keys = { tenantId: 't', primary: 'new', secondary: 'old', secondaryExpiresAt: 1_000 };
  it('signs with the previous key while the rotation window lasts, then with the new one', () => {
    expect(signingKey(keys, 999)).toBe('old');
    expect(signingKey(keys, 1_000)).toBe('new');
    expect(signingKey({ ...keys, secondary: null, secondaryExpiresAt: null }, 0)).toBe('new');
  });
  it('signs every second attempt inside the window with the new key (a gateway enrolled in the window has only that)', () => {
    expect([1, 2, 3, 4].map((attempt) => signingKey(keys, 999, attempt))).toEqual([
      'old',
      'new',
      'old',
      'new',
    ]);
    expect([1, 2].map((attempt) => signingKey(keys, 1_000, attempt))).toEqual(['new', 'new']);
  });
});

describe('gateway-asserted route keys', () => {
  it('may not claim the platform default route "*"', () => {
    expect(
      ProvisionRequestSchema.safeParse({ gatewayId: 'gw', gatewayEndpoint: 'http://x', routeKeys: ['*'] })
        .success,
    ).toBe(false);
    expect(
      EnrollRequestSchema.safeParse({ enrollmentToken: 't', gatewayId: 'gw', routeKeys: [' * '] }).success,
    ).toBe(false);
    expect(
      ProvisionRequestSchema.safeParse({ gatewayId: 'gw', gatewayEndpoint: 'http://x', routeKeys: ['g-1'] })
        .success,
    ).toBe(true);
  });
});
