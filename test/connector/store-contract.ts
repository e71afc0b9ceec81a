/**
 * The behaviour every {@link RelayStore} must show, as one suite to run against each
 * implementation (the SQLite reference and Postgres). Cases mirror test/connector/store.test.ts;
 * anything specific to one backend (files, migrations, multiple instances) lives in its own file.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type DeliveryKind,
  type DeliveryRecord,
  type NewDelivery,
  PRUNE_KINDS,
  type RelayStore,
} from '../../src/connector/store/types.js';
import { mulberry32 } from '../support/prng.js';

export function delivery(
  id: string,
  sessionKey: string,
  opts: { kind?: DeliveryKind; createdAt?: number; tenantId?: string } = {},
): NewDelivery {
  return {
    id,
    tenantId: opts.tenantId ?? 't_a',
    gatewayId: 'gw1',
    sessionKey,
    kind: opts.kind ?? 'message',
    body: JSON.stringify({ delivery_id: id, text: `body of ${id}` }),
    endpoint: 'https://gw.example/relay',
    createdAt: opts.createdAt ?? 0,
  };
}

/**
 * Register the contract suite. `fresh` opens a new, empty store; the suite closes every store it
 * opened after each test.
 */
export function describeStoreContract(name: string, fresh: () => Promise<RelayStore>): void {
  describe(`${name}: RelayStore contract`, () => {
    let store: RelayStore;
    const opened: RelayStore[] = [];
    const open = async (): Promise<RelayStore> => {
      const s = await fresh();
      opened.push(s);
      return s;
    };
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });

    describe('platform state', () => {
      it('reads a value until it expires, and replaces it on put', async () => {
        await store.putPlatformState('discord:session:0', 'a', 1_000);
        expect(await store.getPlatformState('discord:session:0', 999)).toBe('a');
        expect(await store.getPlatformState('discord:session:0', 1_000)).toBeNull();
        await store.putPlatformState('discord:session:0', 'b', 2_000);
        expect(await store.getPlatformState('discord:session:0', 1_500)).toBe('b');
        await store.deletePlatformState('discord:session:0');
        expect(await store.getPlatformState('discord:session:0', 0)).toBeNull();
      });

      it('puts many keys to one value in one call, and deletes only those still holding a value', async () => {
        const keys = Array.from({ length: 700 }, (_, i) => `admin:presence:gw${String(i).padStart(3, '0')}`);
        await store.putPlatformState('admin:presence:gw001', 'old', 500);
        // A repeated key is one row (Postgres: one INSERT may not touch a row twice).
        await store.putPlatformStates([...keys, 'admin:presence:gw002'], 'A', 1_000);
        await store.putPlatformStates([], 'A', 1_000);
        const live = await store.listPlatformState('admin:presence:', 900);
        expect(live).toHaveLength(700);
        expect(new Set(live.map((e) => e.value))).toEqual(new Set(['A']));
        // Another writer took two keys since: those stay.
        await store.putPlatformState('admin:presence:gw005', 'B', 1_000);
        await store.putPlatformState('admin:presence:gw699', 'B', 1_000);
        expect(await store.deletePlatformStatesHolding([...keys, 'admin:presence:absent'], 'A')).toBe(698);
        expect(await store.deletePlatformStatesHolding([], 'A')).toBe(0);
        expect(await store.listPlatformState('admin:presence:', 0)).toEqual([
          { key: 'admin:presence:gw005', value: 'B' },
          { key: 'admin:presence:gw699', value: 'B' },
        ]);
      });

      it('inserts only where no live value is, and purges what expired', async () => {
        expect(await store.insertPlatformState('seen:1', 'x', 1_000, 0)).toBe(true);
        expect(await store.insertPlatformState('seen:1', 'y', 5_000, 500)).toBe(false);
        expect(await store.getPlatformState('seen:1', 500)).toBe('x');
        // Expired: taken over.
        expect(await store.insertPlatformState('seen:1', 'z', 5_000, 1_000)).toBe(true);
        expect(await store.getPlatformState('seen:1', 1_000)).toBe('z');
        await store.putPlatformState('old', 'o', 10);
        expect(await store.purgePlatformState(100)).toBe(1);
        expect(await store.getPlatformState('seen:1', 100)).toBe('z');
      });

      it('lists the live entries under a prefix, by key, in one call', async () => {
        await store.putPlatformState('admin:presence:gw_b', 'i1', 1_000);
        await store.putPlatformState('admin:presence:gw_a', 'i2', 1_000);
        await store.putPlatformState('admin:presence:gw_old', 'i1', 100);
        // Neighbours of the prefix in byte order are not under it.
        await store.putPlatformState('admin:presence', 'no', 1_000);
        await store.putPlatformState('admin:presence;', 'no', 1_000);
        await store.putPlatformState('admin:presenceX', 'no', 1_000);
        await store.putPlatformState('admin:presencf:', 'no', 1_000);
        expect(await store.listPlatformState('admin:presence:', 500)).toEqual([
          { key: 'admin:presence:gw_a', value: 'i2' },
          { key: 'admin:presence:gw_b', value: 'i1' },
        ]);
        expect((await store.listPlatformState('admin:presence:', 50)).map((e) => e.key)).toEqual([
          'admin:presence:gw_a',
          'admin:presence:gw_b',
          'admin:presence:gw_old',
        ]);
        expect(await store.listPlatformState('admin:presence:', 1_000)).toEqual([]);
        expect(await store.listPlatformState('nothing:', 0)).toEqual([]);
        await expect(store.listPlatformState('prés:', 0)).rejects.toThrow(/ASCII/);
      });
    });

    it('enforces foreign keys', async () => {
      await expect(store.addTenantToken('t_missing', 'h', 0)).rejects.toThrow(/foreign key/i);
    });

    describe('tenants', () => {
      it('creates tenants with random t_ ids and finds them', async () => {
        const a = await store.createTenant('acme', 5);
        const b = await store.createTenant('globex', 6);
        expect(a).toEqual({ id: expect.stringMatching(/^t_[0-9a-f]{16}$/), name: 'acme', createdAt: 5 });
        expect(b.id).toMatch(/^t_[0-9a-f]{16}$/);
        expect(b.id).not.toBe(a.id);
        expect(await store.getTenant(a.id)).toEqual(a);
        expect(await store.getTenant('t_nope')).toBeNull();
        expect(await store.findTenantByName('globex')).toEqual(b);
        expect(await store.findTenantByName('nobody')).toBeNull();
        expect(await store.listTenants()).toEqual([a, b]);
      });

      it('rejects a duplicate name', async () => {
        await store.createTenant('acme', 1);
        await expect(store.createTenant('acme', 2)).rejects.toThrow(/tenant named "acme" already exists/);
        expect(await store.listTenants()).toHaveLength(1);
      });

      it('maps token hashes to tenants', async () => {
        const a = await store.createTenant('acme', 1);
        const b = await store.createTenant('globex', 1);
        await store.addTenantToken(a.id, 'ha', 1);
        await store.addTenantToken(a.id, 'ha2', 1);
        await store.addTenantToken(b.id, 'hb', 1);
        expect(await store.findTenantIdByTokenHash('ha')).toBe(a.id);
        expect(await store.findTenantIdByTokenHash('ha2')).toBe(a.id);
        expect(await store.findTenantIdByTokenHash('hb')).toBe(b.id);
        expect(await store.findTenantIdByTokenHash('hx')).toBeNull();
      });
    });

    describe('enrollment tokens', () => {
      it('redeems once, then reports used', async () => {
        const t = await store.createTenant('acme', 0);
        await store.createEnrollmentToken('h', t.id, 1000, 0);
        expect(await store.redeemEnrollmentToken('h', t.id, 'gw1', 1000)).toEqual({
          ok: true,
          tenantId: t.id,
        });
        expect(await store.redeemEnrollmentToken('h', t.id, 'gw2', 1001)).toEqual({
          ok: false,
          reason: 'used',
        });
      });

      it('reports used for a second redemption while the token is still valid', async () => {
        const t = await store.createTenant('acme', 0);
        await store.createEnrollmentToken('h', t.id, 1000, 0);
        expect(await store.redeemEnrollmentToken('h', t.id, 'gw1', 10)).toEqual({ ok: true, tenantId: t.id });
        expect(await store.redeemEnrollmentToken('h', t.id, 'gw1', 20)).toEqual({
          ok: false,
          reason: 'used',
        });
        expect(await store.redeemEnrollmentToken('h', t.id, 'gw2', 30)).toEqual({
          ok: false,
          reason: 'used',
        });
      });

      it('reports unknown and expired', async () => {
        const t = await store.createTenant('acme', 0);
        await store.createEnrollmentToken('h', t.id, 1000, 0);
        expect(await store.redeemEnrollmentToken('zzz', t.id, 'gw1', 1)).toEqual({
          ok: false,
          reason: 'unknown',
        });
        expect(await store.redeemEnrollmentToken('h', t.id, 'gw1', 1001)).toEqual({
          ok: false,
          reason: 'expired',
        });
      });

      it("refuses another tenant's token and leaves it unused", async () => {
        const a = await store.createTenant('acme', 0);
        const b = await store.createTenant('globex', 0);
        await store.createEnrollmentToken('h', a.id, 1000, 0);
        expect(await store.redeemEnrollmentToken('h', b.id, 'gw1', 1)).toEqual({
          ok: false,
          reason: 'wrong_tenant',
        });
        expect(await store.redeemEnrollmentToken('h', a.id, 'gw1', 2)).toEqual({ ok: true, tenantId: a.id });
      });
    });

    describe('gateways', () => {
      const base = { platform: 'telegram', botId: 'bot1', rotationWindowMs: 1000 };

      it('creates a gateway with no secondary secret', async () => {
        const t = await store.createTenant('acme', 0);
        const gw = await store.putGatewaySecret({
          ...base,
          id: 'gw1',
          tenantId: t.id,
          secret: 's1',
          endpoint: undefined,
          now: 5,
        });
        expect(gw).toEqual({
          id: 'gw1',
          tenantId: t.id,
          secret: 's1',
          secondarySecret: null,
          secondaryExpiresAt: null,
          revoked: false,
          revokedAt: null,
          platform: 'telegram',
          botId: 'bot1',
          endpoint: '',
          createdAt: 5,
          lastSeenAt: null,
          instanceId: null,
          wakeUrl: null,
          displayName: null,
          idleSince: null,
        });
        expect(await store.getGateway('gw1')).toEqual(gw);
        expect(await store.getGateway('nope')).toBeNull();
      });

      it('keeps one identity per platform, the first from the secret, and changes details only where named', async () => {
        const t = await store.createTenant('acme', 0);
        await store.putGatewaySecret({
          ...base,
          id: 'gw1',
          tenantId: t.id,
          secret: 's1',
          endpoint: undefined,
          now: 5,
        });
        await store.addGatewayIdentity('gw1', 'discord', 'app-1', 7);
        await store.addGatewayIdentity('gw1', 'telegram', 'bot9', 9);
        expect(await store.listGatewayIdentities('gw1')).toEqual([
          { gatewayId: 'gw1', platform: 'telegram', botId: 'bot9', createdAt: 5 },
          { gatewayId: 'gw1', platform: 'discord', botId: 'app-1', createdAt: 7 },
        ]);
        expect(await store.listGatewayIdentities('nope')).toEqual([]);

        const updated = await store.updateGatewayDetails('gw1', {
          instanceId: 'inst-abc',
          wakeUrl: 'https://wake.example/poke',
        });
        expect(updated).toMatchObject({
          instanceId: 'inst-abc',
          wakeUrl: 'https://wake.example/poke',
          displayName: null,
        });
        const again = await store.updateGatewayDetails('gw1', { displayName: 'Ops Bot', wakeUrl: null });
        expect(again).toMatchObject({ instanceId: 'inst-abc', wakeUrl: null, displayName: 'Ops Bot' });
        expect(await store.updateGatewayDetails('nope', { displayName: 'x' })).toBeNull();

        await store.setGatewayIdle('gw1', 1234);
        expect((await store.getGateway('gw1'))?.idleSince).toBe(1234);
        await store.clearGatewaysIdle(['gw1']);
        expect((await store.getGateway('gw1'))?.idleSince).toBeNull();
        // Clearing a mark that is not there (every first hello) changes nothing; marking again works.
        await store.clearGatewaysIdle(['gw1']);
        await store.clearGatewaysIdle([]);
        expect((await store.getGateway('gw1'))?.idleSince).toBeNull();
        await store.setGatewayIdle('gw1', 99);
        expect((await store.getGateway('gw1'))?.idleSince).toBe(99);
      });

      it('stores one policy per (tenant, platform, instance), each put replacing the last', async () => {
        const t = await store.createTenant('acme', 0);
        const u = await store.createTenant('globex', 0);
        const policy = {
          tenantId: t.id,
          platform: 'discord',
          instanceKey: 'inst-1',
          requireAddress: true,
          freeResponseScopes: ['c-support', 'c-help'],
          allowOtherBots: false,
          updatedAt: 10,
        };
        await store.putPolicy(policy);
        expect(await store.getPolicy(t.id, 'discord', 'inst-1')).toEqual(policy);
        const replaced = {
          ...policy,
          requireAddress: false,
          freeResponseScopes: [],
          allowOtherBots: true,
          updatedAt: 20,
        };
        await store.putPolicy(replaced);
        await store.putPolicy({ ...policy, tenantId: u.id });
        expect(await store.getPolicy(t.id, 'discord', 'inst-1')).toEqual(replaced);
        expect(await store.getPolicy(t.id, 'telegram', 'inst-1')).toBeNull();
        expect(await store.listPolicies(t.id)).toEqual([replaced]);
        expect(await store.listPolicies()).toHaveLength(2);
      });

      it('rotates: old primary becomes secondary until now + window; endpoint changes only when given', async () => {
        const t = await store.createTenant('acme', 0);
        await store.putGatewaySecret({
          ...base,
          id: 'gw1',
          tenantId: t.id,
          secret: 's1',
          endpoint: 'https://a.example',
          now: 5,
        });
        const rotated = await store.putGatewaySecret({
          ...base,
          id: 'gw1',
          tenantId: t.id,
          secret: 's2',
          platform: 'webchat',
          botId: 'bot2',
          endpoint: undefined,
          now: 100,
        });
        expect(rotated).toMatchObject({
          secret: 's2',
          secondarySecret: 's1',
          secondaryExpiresAt: 1100,
          platform: 'webchat',
          botId: 'bot2',
          endpoint: 'https://a.example',
          createdAt: 5,
        });
        const third = await store.putGatewaySecret({
          ...base,
          id: 'gw1',
          tenantId: t.id,
          secret: 's3',
          endpoint: '',
          now: 200,
        });
        expect(third).toMatchObject({
          secret: 's3',
          secondarySecret: 's2',
          secondaryExpiresAt: 1200,
          endpoint: '',
        });
        expect(await store.getGateway('gw1')).toEqual(third);
      });

      it('returns the stored secondary even after it expired (callers check the expiry)', async () => {
        const t = await store.createTenant('acme', 0);
        await store.putGatewaySecret({
          ...base,
          id: 'gw1',
          tenantId: t.id,
          secret: 's1',
          endpoint: undefined,
          now: 0,
        });
        await store.putGatewaySecret({
          ...base,
          id: 'gw1',
          tenantId: t.id,
          secret: 's2',
          endpoint: undefined,
          now: 0,
        });
        const gw = await store.getGateway('gw1');
        expect(gw?.secondarySecret).toBe('s1');
        expect(gw?.secondaryExpiresAt).toBe(1000);
      });

      it('refuses to move a gateway to another tenant', async () => {
        const a = await store.createTenant('acme', 0);
        const b = await store.createTenant('globex', 0);
        await store.putGatewaySecret({
          ...base,
          id: 'gw1',
          tenantId: a.id,
          secret: 's1',
          endpoint: undefined,
          now: 0,
        });
        await expect(
          store.putGatewaySecret({
            ...base,
            id: 'gw1',
            tenantId: b.id,
            secret: 's2',
            endpoint: undefined,
            now: 1,
          }),
        ).rejects.toThrow(/another tenant/);
        expect((await store.getGateway('gw1'))?.secret).toBe('s1');
      });

      it("lists every gateway's identities at once, by gateway then oldest first, or one tenant's", async () => {
        const a = await store.createTenant('acme', 0);
        const b = await store.createTenant('globex', 0);
        const put = (id: string, tenantId: string, now: number) =>
          store.putGatewaySecret({ ...base, id, tenantId, secret: 's', endpoint: undefined, now });
        await put('gw_b', a.id, 1);
        await put('gw_a', b.id, 2);
        await put('gw_c', a.id, 3);
        await store.addGatewayIdentity('gw_b', 'discord', 'd1', 5);
        await store.addGatewayIdentity('gw_b', 'api', 'x1', 5);
        await store.addGatewayIdentity('gw_a', 'discord', 'd2', 4);
        await store.revokeGateway('gw_c', 6);
        const ids = (list: { gatewayId: string; platform: string; botId: string }[]) =>
          list.map((i) => `${i.gatewayId} ${i.platform}:${i.botId}`);
        const all = await store.listAllGatewayIdentities();
        expect(ids(all)).toEqual([
          'gw_a telegram:bot1',
          'gw_a discord:d2',
          'gw_b telegram:bot1',
          'gw_b api:x1',
          'gw_b discord:d1',
          'gw_c telegram:bot1',
        ]);
        // The same rows as asking gateway by gateway.
        for (const id of ['gw_a', 'gw_b', 'gw_c'])
          expect(all.filter((i) => i.gatewayId === id)).toEqual(await store.listGatewayIdentities(id));
        expect(ids(await store.listAllGatewayIdentities(a.id))).toEqual([
          'gw_b telegram:bot1',
          'gw_b api:x1',
          'gw_b discord:d1',
          'gw_c telegram:bot1',
        ]);
        expect(ids(await store.listAllGatewayIdentities(b.id))).toEqual([
          'gw_a telegram:bot1',
          'gw_a discord:d2',
        ]);
        expect(await store.listAllGatewayIdentities('t_nobody')).toEqual([]);
      });

      it('lists by tenant and records last seen', async () => {
        const a = await store.createTenant('acme', 0);
        const b = await store.createTenant('globex', 0);
        await store.putGatewaySecret({
          ...base,
          id: 'gw1',
          tenantId: a.id,
          secret: 's',
          endpoint: undefined,
          now: 1,
        });
        await store.putGatewaySecret({
          ...base,
          id: 'gw2',
          tenantId: b.id,
          secret: 's',
          endpoint: undefined,
          now: 2,
        });
        await store.putGatewaySecret({
          ...base,
          id: 'gw3',
          tenantId: a.id,
          secret: 's',
          endpoint: undefined,
          now: 3,
        });
        expect((await store.listGateways()).map((g) => g.id)).toEqual(['gw1', 'gw2', 'gw3']);
        expect((await store.listGateways(a.id)).map((g) => g.id)).toEqual(['gw1', 'gw3']);
        await store.touchGateways(['gw2'], 77);
        expect((await store.getGateway('gw2'))?.lastSeenAt).toBe(77);
        expect((await store.getGateway('gw1'))?.lastSeenAt).toBeNull();
        // Many in one write; an unknown id is no error.
        await store.touchGateways(['gw3', 'gw1', 'nope'], 88);
        await store.touchGateways([], 99);
        expect((await store.listGateways()).map((g) => [g.id, g.lastSeenAt])).toEqual([
          ['gw1', 88],
          ['gw2', 77],
          ['gw3', 88],
        ]);
        // Idle marks of many cleared in one write; a gateway not named keeps its mark.
        await store.setGatewayIdle('gw1', 5);
        await store.setGatewayIdle('gw2', 6);
        await store.clearGatewaysIdle(['gw3', 'gw1', 'nope']);
        expect((await store.listGateways()).map((g) => [g.id, g.idleSince])).toEqual([
          ['gw1', null],
          ['gw2', 6],
          ['gw3', null],
        ]);
      });

      it('revokes idempotently, keeping the first revocation time', async () => {
        const t = await store.createTenant('acme', 0);
        for (const id of ['gw1', 'gw2', 'gw3']) {
          await store.putGatewaySecret({
            ...base,
            id,
            tenantId: t.id,
            secret: 's',
            endpoint: undefined,
            now: 0,
          });
        }
        expect(await store.revokeGateway('gw1', 100)).toMatchObject({
          id: 'gw1',
          revoked: true,
          revokedAt: 100,
        });
        expect(await store.revokeGateway('gw1', 500)).toMatchObject({ revoked: true, revokedAt: 100 });
        await store.revokeGateway('gw2', 200);
        expect(await store.revokeGateway('nope', 1)).toBeNull();
        expect(await store.listRevokedSince(100)).toEqual([
          { id: 'gw1', revokedAt: 100 },
          { id: 'gw2', revokedAt: 200 },
        ]);
        expect(await store.listRevokedSince(101)).toEqual([{ id: 'gw2', revokedAt: 200 }]);
        expect(await store.listRevokedSince(201)).toEqual([]);
        expect((await store.getGateway('gw3'))?.revoked).toBe(false);
      });
    });

    describe('delivery keys', () => {
      it('creates once and keeps the first key', async () => {
        const t = await store.createTenant('acme', 0);
        expect(await store.getDeliveryKeys(t.id)).toBeNull();
        const first = await store.getOrCreateDeliveryKey(t.id, 'k1');
        expect(first).toEqual({ tenantId: t.id, primary: 'k1', secondary: null, secondaryExpiresAt: null });
        expect(await store.getOrCreateDeliveryKey(t.id, 'k2')).toEqual(first);
        expect(await store.getDeliveryKeys(t.id)).toEqual(first);
      });

      it('rotates the primary into the secondary slot', async () => {
        const t = await store.createTenant('acme', 0);
        await store.getOrCreateDeliveryKey(t.id, 'k1');
        expect(await store.rotateDeliveryKey(t.id, 'k2', 100, 50)).toEqual({
          tenantId: t.id,
          primary: 'k2',
          secondary: 'k1',
          secondaryExpiresAt: 150,
        });
        expect(await store.rotateDeliveryKey(t.id, 'k3', 200, 50)).toMatchObject({
          primary: 'k3',
          secondary: 'k2',
          secondaryExpiresAt: 250,
        });
      });

      it('rotating without a key just stores the new primary', async () => {
        const t = await store.createTenant('acme', 0);
        expect(await store.rotateDeliveryKey(t.id, 'k1', 100, 50)).toEqual({
          tenantId: t.id,
          primary: 'k1',
          secondary: null,
          secondaryExpiresAt: null,
        });
      });
    });

    describe('routes', () => {
      it('inserts, updates in place (keeping createdAt) and refuses another tenant', async () => {
        const a = await store.createTenant('acme', 0);
        const b = await store.createTenant('globex', 0);
        const created = await store.upsertRoute(
          { platform: 'telegram', routeKey: '42', tenantId: a.id, endpoint: '', gatewayId: null },
          10,
        );
        expect(created).toEqual({
          ok: true,
          route: {
            platform: 'telegram',
            routeKey: '42',
            tenantId: a.id,
            endpoint: '',
            gatewayId: null,
            createdAt: 10,
          },
        });
        const updated = await store.upsertRoute(
          {
            platform: 'telegram',
            routeKey: '42',
            tenantId: a.id,
            endpoint: 'https://a.example',
            gatewayId: 'gw1',
          },
          20,
        );
        expect(updated).toEqual({
          ok: true,
          route: {
            platform: 'telegram',
            routeKey: '42',
            tenantId: a.id,
            endpoint: 'https://a.example',
            gatewayId: 'gw1',
            createdAt: 10,
          },
        });
        expect(
          await store.upsertRoute(
            {
              platform: 'telegram',
              routeKey: '42',
              tenantId: b.id,
              endpoint: 'https://evil',
              gatewayId: 'gwx',
            },
            30,
          ),
        ).toEqual({ ok: false, reason: 'owned_by_other_tenant', routeKey: '42' });
        expect(await store.findRoute('telegram', '42')).toEqual(updated.ok ? updated.route : null);
      });

      it('finds the exact key, then the platform default, else nothing', async () => {
        const a = await store.createTenant('acme', 0);
        const b = await store.createTenant('globex', 0);
        await store.upsertRoute(
          { platform: 'telegram', routeKey: '*', tenantId: a.id, endpoint: '', gatewayId: null },
          1,
        );
        await store.upsertRoute(
          { platform: 'telegram', routeKey: '7', tenantId: b.id, endpoint: 'e', gatewayId: 'g' },
          2,
        );
        await store.upsertRoute(
          { platform: 'webchat', routeKey: 'room', tenantId: b.id, endpoint: '', gatewayId: null },
          3,
        );
        expect((await store.findRoute('telegram', '7'))?.tenantId).toBe(b.id);
        expect(await store.findRoute('telegram', '8')).toMatchObject({ routeKey: '*', tenantId: a.id });
        expect(await store.findRoute('webchat', 'other')).toBeNull();
        expect(await store.findRoute('discord', '7')).toBeNull();
        expect((await store.listRoutes()).map((r) => `${r.platform}/${r.routeKey}`)).toEqual([
          'telegram/*',
          'telegram/7',
          'webchat/room',
        ]);
        expect((await store.listRoutes(b.id)).map((r) => r.routeKey)).toEqual(['7', 'room']);
      });
    });

    describe('chats', () => {
      it('upserts and finds per tenant', async () => {
        const a = await store.createTenant('acme', 0);
        const b = await store.createTenant('globex', 0);
        await store.recordChat({
          tenantId: a.id,
          platform: 'telegram',
          chatId: 'c1',
          routeKey: '*',
          updatedAt: 1,
        });
        await store.recordChat({
          tenantId: a.id,
          platform: 'webchat',
          chatId: 'c1',
          routeKey: 'room',
          updatedAt: 2,
        });
        expect(await store.findChat(a.id, 'c1')).toEqual({
          tenantId: a.id,
          platform: 'webchat',
          chatId: 'c1',
          routeKey: 'room',
          updatedAt: 2,
        });
        expect(await store.findChat(b.id, 'c1')).toBeNull();
        expect(await store.findChat(a.id, 'c2')).toBeNull();
      });

      it('tells which tenants a chat of a platform was delivered to', async () => {
        const a = await store.createTenant('acme', 1);
        const b = await store.createTenant('beta', 1);
        expect(await store.chatTenants('webchat', 'c1')).toEqual([]);
        await store.recordChat({
          tenantId: a.id,
          platform: 'webchat',
          chatId: 'c1',
          routeKey: 'r',
          updatedAt: 1,
        });
        await store.recordChat({
          tenantId: b.id,
          platform: 'webchat',
          chatId: 'c1',
          routeKey: 'r',
          updatedAt: 2,
        });
        await store.recordChat({
          tenantId: b.id,
          platform: 'telegram',
          chatId: 'c2',
          routeKey: '*',
          updatedAt: 3,
        });
        expect(await store.chatTenants('webchat', 'c1')).toEqual([a.id, b.id].sort());
        expect(await store.chatTenants('telegram', 'c1')).toEqual([]);
        expect(await store.chatTenants('telegram', 'c2')).toEqual([b.id]);
      });
    });

    describe('outbox', () => {
      it('enqueues with increasing seq, no attempts, due at createdAt', async () => {
        const d1 = await store.enqueueDelivery(delivery('d1', 's1', { createdAt: 50 }));
        const d2 = await store.enqueueDelivery(delivery('d2', 's2', { createdAt: 40 }));
        expect(d1).toEqual({
          ...delivery('d1', 's1', { createdAt: 50 }),
          seq: d1.seq,
          attempts: 0,
          nextAttemptAt: 50,
          lastError: null,
          lastStatus: null,
          claimedBy: null,
          claimedUntil: null,
        });
        expect(d2.seq).toBeGreaterThan(d1.seq);
        expect(await store.outboxDepth()).toBe(2);
        await expect(store.enqueueDelivery(delivery('d1', 's9'))).rejects.toThrow();
      });

      it("makes a tenant's waiting socket rows due now, and nothing else", async () => {
        await store.enqueueDelivery({ ...delivery('s1', 'a', { createdAt: 0 }), endpoint: '' });
        await store.enqueueDelivery({
          ...delivery('h1', 'b', { createdAt: 0 }),
          endpoint: 'https://gw.example',
        });
        await store.enqueueDelivery({
          ...delivery('o1', 'c', { createdAt: 0, tenantId: 't_b' }),
          endpoint: '',
        });
        for (const id of ['s1', 'h1', 'o1']) {
          const [claimed] = (await store.claimDueDeliveries('e', 0, 10, 1_000)).filter((d) => d.id === id);
          if (claimed) await store.retryDeliveryLater(id, 'e', 50_000, 'no gateway connected', null);
        }
        expect(await store.makeSocketDeliveriesDue('t_a', 100)).toBe(1);
        const due = (await store.claimDueDeliveries('e', 100, 10, 1_000)).map((d) => d.id);
        expect(due).toEqual(['s1']);
      });

      it('counts waiting rows per tenant and preferred gateway', async () => {
        expect(await store.outboxCounts()).toEqual([]);
        await store.enqueueDelivery(delivery('d1', 's1'));
        await store.enqueueDelivery(delivery('d2', 's2'));
        await store.enqueueDelivery({ ...delivery('d3', 's3', { tenantId: 't_b' }), gatewayId: null });
        expect(await store.outboxCounts()).toEqual([
          { tenantId: 't_a', gatewayId: 'gw1', count: 2 },
          { tenantId: 't_b', gatewayId: null, count: 1 },
        ]);
      });

      it('queues a delivery with a dedupe key once, in a batch or alone, until the key expires', async () => {
        const keyed = (id: string, createdAt: number, until = 1_000): NewDelivery => ({
          ...delivery(id, 's', { createdAt }),
          dedupe: { key: 'discord:app:message:42', until },
        });
        const [first, again] = await store.enqueueDeliveries([keyed('k1', 1), keyed('k2', 2)]);
        expect(first?.duplicate).toBeUndefined();
        expect(again).toMatchObject({ id: 'k1', duplicate: true, claimedBy: null });
        expect(await store.enqueueDelivery(keyed('k3', 3))).toMatchObject({ id: 'k1', duplicate: true });
        expect((await store.listDeliveries(10)).map((d) => d.id)).toEqual(['k1']);
        // Remembered past the row's delivery, until the key expires.
        await store.claimDueDeliveries('A', 10, 10, 100);
        expect(await store.completeDelivery('k1', 'A')).toBe(true);
        expect((await store.enqueueDelivery(keyed('k4', 500))).duplicate).toBe(true);
        expect((await store.enqueueDelivery(keyed('k5', 1_000, 2_000))).duplicate).toBeUndefined();
        expect((await store.listDeliveries(10)).map((d) => d.id)).toEqual(['k5']);
      });

      it('enqueues a batch in one go, in order, with the same head rule as single enqueues', async () => {
        await store.enqueueDelivery(delivery('m0', 's', { createdAt: 1 }));
        expect(await store.enqueueDeliveries([])).toEqual([]);
        const batch = await store.enqueueDeliveries([
          delivery('m1', 's', { createdAt: 2 }),
          delivery('o1', 'other', { createdAt: 2 }),
          delivery('i1', 's', { kind: 'interrupt', createdAt: 2 }),
          delivery('o2', 'other', { createdAt: 3 }),
        ]);
        expect(batch.map((d) => d.id)).toEqual(['m1', 'o1', 'i1', 'o2']);
        expect(batch[0]).toEqual({
          ...delivery('m1', 's', { createdAt: 2 }),
          seq: batch[0]?.seq,
          attempts: 0,
          nextAttemptAt: 2,
          lastError: null,
          lastStatus: null,
          claimedBy: null,
          claimedUntil: null,
        });
        const seqs = batch.map((d) => d.seq);
        expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
        expect(new Set(seqs).size).toBe(4);
        // m1 waits behind m0, o2 behind o1; the interrupt goes at once.
        expect((await store.claimDueDeliveries('A', 10, 10, 100)).map((d) => d.id)).toEqual([
          'm0',
          'o1',
          'i1',
        ]);
        expect(await store.completeDeliveries(['m0', 'o1'], 'A')).toEqual([
          { completed: true, promoted: true },
          { completed: true, promoted: true },
        ]);
        expect((await store.claimDueDeliveries('A', 11, 10, 100)).map((d) => d.id)).toEqual(['m1', 'o2']);
      });

      it('leases the rows of a batch that are claimable at once, up to the limit', async () => {
        await store.enqueueDelivery(delivery('m0', 's', { createdAt: 1 }));
        const batch = await store.enqueueDeliveries(
          [
            delivery('m1', 's', { createdAt: 5 }), // behind m0: not eligible
            delivery('a1', 'sa', { createdAt: 5 }),
            delivery('a2', 'sa', { createdAt: 5 }), // behind a1
            delivery('f1', 'sf', { createdAt: 50 }), // not due at 10
            delivery('i1', 's', { kind: 'interrupt', createdAt: 5 }),
            delivery('b1', 'sb', { createdAt: 5 }), // eligible, but over the limit
          ],
          { claimer: 'A', now: 10, leaseMs: 100, limit: 2 },
        );
        expect(batch.map((d) => [d.id, d.claimedBy, d.claimedUntil, d.attempts])).toEqual([
          ['m1', null, null, 0],
          ['a1', 'A', 110, 1],
          ['a2', null, null, 0],
          ['f1', null, null, 0],
          ['i1', 'A', 110, 1],
          ['b1', null, null, 0],
        ]);
        expect(batch[1]).toEqual({
          ...delivery('a1', 'sa', { createdAt: 5 }),
          seq: batch[1]?.seq,
          attempts: 1,
          nextAttemptAt: 5,
          lastError: null,
          lastStatus: null,
          claimedBy: 'A',
          claimedUntil: 110,
        });
        // The listing shows the same rows; leased ones are not offered again while the lease holds.
        const listed = new Map((await store.listDeliveries(10)).map((d) => [d.id, d]));
        for (const record of batch) expect(listed.get(record.id)).toEqual(record);
        expect((await store.claimDueDeliveries('B', 20, 10, 100)).map((d) => d.id)).toEqual(['m0', 'b1']);
        expect(await store.completeDeliveries(['a1', 'i1'], 'A')).toEqual([
          { completed: true, promoted: true },
          { completed: true, promoted: false },
        ]);
        expect((await store.claimDueDeliveries('B', 21, 10, 100)).map((d) => d.id)).toEqual(['a2']);
        // A lease of 0 leases nothing.
        const none = await store.enqueueDeliveries([delivery('c1', 'sc', { createdAt: 5 })], {
          claimer: 'A',
          now: 10,
          leaseMs: 100,
          limit: 0,
        });
        expect(none[0]?.claimedBy).toBeNull();
      });

      it('enqueues all of a batch or none of it', async () => {
        await store.enqueueDelivery(delivery('dup', 's0'));
        await expect(
          store.enqueueDeliveries([delivery('n1', 's1'), delivery('dup', 's2'), delivery('n2', 's3')]),
        ).rejects.toThrow();
        expect((await store.listDeliveries(10)).map((d) => d.id)).toEqual(['dup']);
      });

      it('completes a batch of claimed deliveries, reporting each, and promotes their sessions', async () => {
        await store.enqueueDelivery(delivery('a1', 'sa'));
        await store.enqueueDelivery(delivery('a2', 'sa'));
        await store.enqueueDelivery(delivery('b1', 'sb'));
        await store.enqueueDelivery(delivery('c1', 'sc'));
        await store.enqueueDelivery(delivery('i1', 'sa', { kind: 'interrupt' }));
        expect((await store.claimDueDeliveries('A', 1, 2, 100)).map((d) => d.id)).toEqual(['a1', 'b1']);
        expect((await store.claimDueDeliveries('B', 1, 10, 100)).map((d) => d.id)).toEqual(['c1', 'i1']);
        expect(await store.completeDeliveries([], 'A')).toEqual([]);
        // c1 is B's, nope does not exist, a1 appears twice: only the first completes it. Only a1
        // had a later message (a2) waiting behind it.
        const no = { completed: false, promoted: false };
        expect(await store.completeDeliveries(['a1', 'c1', 'nope', 'b1', 'a1'], 'A')).toEqual([
          { completed: true, promoted: true },
          no,
          no,
          { completed: true, promoted: false },
          no,
        ]);
        expect((await store.listDeliveries(10)).map((d) => d.id).sort()).toEqual(['a2', 'c1', 'i1']);
        expect((await store.claimDueDeliveries('A', 2, 10, 100)).map((d) => d.id)).toEqual(['a2']);
        expect(await store.completeDeliveries(['i1', 'c1'], 'B')).toEqual([
          { completed: true, promoted: false },
          { completed: true, promoted: false },
        ]);
        expect(await store.completeDeliveries(['a2'], 'A')).toEqual([{ completed: true, promoted: false }]);
        expect(await store.outboxDepth()).toBe(0);
        expect(await store.nextDueAt()).toBeNull();
      });

      it('claims due deliveries in seq order, leasing them and counting the attempt', async () => {
        await store.enqueueDelivery(delivery('d1', 's1', { createdAt: 10 }));
        await store.enqueueDelivery(delivery('d2', 's2', { createdAt: 30 }));
        await store.enqueueDelivery(delivery('d3', 's3', { createdAt: 5 }));
        await store.enqueueDelivery(delivery('d4', 's4', { createdAt: 6 }));
        const claimed = await store.claimDueDeliveries('A', 20, 2, 1000);
        expect(claimed.map((d) => d.id)).toEqual(['d1', 'd3']);
        for (const d of claimed) expect(d).toMatchObject({ claimedBy: 'A', claimedUntil: 1020, attempts: 1 });
        expect((await store.claimDueDeliveries('B', 20, 10, 1000)).map((d) => d.id)).toEqual(['d4']);
        expect(await store.claimDueDeliveries('B', 20, 10, 1000)).toEqual([]);
        expect((await store.claimDueDeliveries('B', 30, 10, 1000)).map((d) => d.id)).toEqual(['d2']);
        expect(await store.claimDueDeliveries('B', 30, 0, 1000)).toEqual([]);
      });

      it('holds back later messages of a session until the earlier one is finished', async () => {
        await store.enqueueDelivery(delivery('m1', 's'));
        await store.enqueueDelivery(delivery('m2', 's'));
        await store.enqueueDelivery(delivery('o1', 'other'));
        await store.enqueueDelivery(delivery('x1', 's', { tenantId: 't_b' }));
        expect((await store.claimDueDeliveries('A', 1, 10, 100)).map((d) => d.id)).toEqual([
          'm1',
          'o1',
          'x1',
        ]);
        expect(await store.claimDueDeliveries('A', 2, 10, 100)).toEqual([]);
        expect(await store.completeDelivery('m1', 'A')).toBe(true);
        expect((await store.claimDueDeliveries('A', 3, 10, 100)).map((d) => d.id)).toEqual(['m2']);
      });

      it('holds back later messages even while the earlier one waits unclaimed for its retry', async () => {
        await store.enqueueDelivery(delivery('m1', 's'));
        await store.enqueueDelivery(delivery('m2', 's'));
        await store.claimDueDeliveries('A', 1, 10, 100);
        expect(await store.retryDeliveryLater('m1', 'A', 500, 'boom', 503)).toBe(true);
        expect(await store.claimDueDeliveries('A', 10, 10, 100)).toEqual([]);
        expect((await store.claimDueDeliveries('A', 500, 10, 100)).map((d) => d.id)).toEqual(['m1']);
      });

      it('lets interrupts through regardless of the messages of their session', async () => {
        await store.enqueueDelivery(delivery('m1', 's'));
        await store.enqueueDelivery(delivery('m2', 's'));
        await store.enqueueDelivery(delivery('i1', 's', { kind: 'interrupt' }));
        await store.enqueueDelivery(delivery('i2', 's', { kind: 'interrupt' }));
        expect((await store.claimDueDeliveries('A', 1, 10, 100)).map((d) => d.id)).toEqual([
          'm1',
          'i1',
          'i2',
        ]);
        // A pending interrupt does not hold a message back either.
        await store.enqueueDelivery(delivery('i3', 't', { kind: 'interrupt', createdAt: 1000 }));
        await store.enqueueDelivery(delivery('m3', 't'));
        expect((await store.claimDueDeliveries('A', 2, 10, 100)).map((d) => d.id)).toEqual(['m3']);
      });

      it('never hands the same delivery to two claimers while the lease holds', async () => {
        for (let i = 0; i < 6; i++) await store.enqueueDelivery(delivery(`d${i}`, `s${i}`));
        const a = await store.claimDueDeliveries('A', 1, 4, 100);
        const b = await store.claimDueDeliveries('B', 1, 4, 100);
        expect(a.map((d) => d.id)).toEqual(['d0', 'd1', 'd2', 'd3']);
        expect(b.map((d) => d.id)).toEqual(['d4', 'd5']);
      });

      it('re-offers an expired lease to another claimer and then ignores the original claimer', async () => {
        await store.enqueueDelivery(delivery('m1', 's'));
        await store.enqueueDelivery(delivery('m2', 's'));
        expect((await store.claimDueDeliveries('A', 0, 10, 100)).map((d) => d.id)).toEqual(['m1']);
        // the lease holds up to and including claimedUntil
        expect(await store.claimDueDeliveries('B', 100, 10, 100)).toEqual([]);
        const reclaimed = await store.claimDueDeliveries('B', 101, 10, 100);
        expect(reclaimed.map((d) => [d.id, d.claimedBy, d.attempts])).toEqual([['m1', 'B', 2]]);
        expect(await store.completeDelivery('m1', 'A')).toBe(false);
        expect(await store.retryDeliveryLater('m1', 'A', 0, 'late', null)).toBe(false);
        expect(await store.deadLetterDelivery('m1', 'A', 'late', null, 102)).toBe(false);
        expect(await store.outboxDepth()).toBe(2);
        expect(await store.completeDelivery('m1', 'B')).toBe(true);
        expect(await store.completeDelivery('m1', 'B')).toBe(false);
        expect((await store.claimDueDeliveries('A', 102, 10, 100)).map((d) => d.id)).toEqual(['m2']);
      });

      it('lets the named claimer finish after its lease lapsed if nobody took over', async () => {
        await store.enqueueDelivery(delivery('m1', 's'));
        await store.claimDueDeliveries('A', 0, 10, 100);
        expect(await store.completeDelivery('m1', 'A')).toBe(true);
        expect(await store.outboxDepth()).toBe(0);
      });

      it('retries later: clears the claim and records the error', async () => {
        await store.enqueueDelivery(delivery('m1', 's'));
        await store.claimDueDeliveries('A', 0, 10, 100);
        expect(await store.retryDeliveryLater('m1', 'B', 50, 'x', 500)).toBe(false);
        expect(await store.retryDeliveryLater('nope', 'A', 50, 'x', 500)).toBe(false);
        expect(await store.retryDeliveryLater('m1', 'A', 50, 'HTTP 503', 503)).toBe(true);
        expect(await store.listDeliveries(10)).toEqual([
          expect.objectContaining({
            id: 'm1',
            attempts: 1,
            nextAttemptAt: 50,
            lastError: 'HTTP 503',
            lastStatus: 503,
            claimedBy: null,
            claimedUntil: null,
          }),
        ]);
        expect(await store.claimDueDeliveries('A', 49, 10, 100)).toEqual([]);
        const again = await store.claimDueDeliveries('B', 50, 10, 100);
        expect(again.map((d) => [d.id, d.claimedBy, d.attempts])).toEqual([['m1', 'B', 2]]);
        expect(await store.retryDeliveryLater('m1', 'B', 60, 'timeout', null)).toBe(true);
        expect((await store.listDeliveries(1))[0]).toMatchObject({ lastError: 'timeout', lastStatus: null });
      });

      it('dead-letters a claimed delivery and unblocks its session', async () => {
        await store.enqueueDelivery(delivery('m1', 's', { createdAt: 1 }));
        await store.enqueueDelivery(delivery('m2', 's', { createdAt: 2 }));
        await store.claimDueDeliveries('A', 5, 10, 100);
        await store.retryDeliveryLater('m1', 'A', 6, 'HTTP 500', 500);
        await store.claimDueDeliveries('A', 6, 10, 100);
        expect(await store.deadLetterDelivery('m1', 'B', 'HTTP 404', 404, 7)).toBe(false);
        expect(await store.deadLetterDelivery('m2', 'A', 'HTTP 404', 404, 7)).toBe(false);
        expect(await store.deadLetterDelivery('m1', 'A', 'HTTP 404', 404, 7)).toBe(true);
        expect(await store.deadLetterDelivery('m1', 'A', 'HTTP 404', 404, 7)).toBe(false);
        const [dead] = await store.listDeadLetters(10);
        expect(dead).toEqual({
          ...delivery('m1', 's', { createdAt: 1 }),
          seq: expect.any(Number),
          attempts: 2,
          reason: 'HTTP 404',
          lastStatus: 404,
          deadAt: 7,
        });
        expect(await store.outboxDepth()).toBe(1);
        expect((await store.claimDueDeliveries('A', 8, 10, 100)).map((d) => d.id)).toEqual(['m2']);
      });

      it('lists dead letters and deliveries newest first, limited', async () => {
        for (let i = 1; i <= 4; i++) await store.enqueueDelivery(delivery(`d${i}`, `s${i}`));
        expect((await store.listDeliveries(3)).map((d) => d.id)).toEqual(['d4', 'd3', 'd2']);
        await store.claimDueDeliveries('A', 0, 10, 100);
        await store.deadLetterDelivery('d2', 'A', 'r', null, 10);
        await store.deadLetterDelivery('d1', 'A', 'r', null, 20);
        await store.deadLetterDelivery('d3', 'A', 'r', null, 20);
        expect((await store.listDeadLetters(10)).map((d) => d.id)).toEqual(['d3', 'd1', 'd2']);
        expect((await store.listDeadLetters(2)).map((d) => d.id)).toEqual(['d3', 'd1']);
        expect((await store.listDeliveries(10)).map((d) => d.id)).toEqual(['d4']);
      });

      it('retries a dead letter at the back of the queue with a fresh attempt count', async () => {
        await store.enqueueDelivery(delivery('m1', 's', { createdAt: 1 }));
        const m2 = await store.enqueueDelivery(delivery('m2', 's', { createdAt: 2 }));
        await store.claimDueDeliveries('A', 5, 10, 100);
        await store.deadLetterDelivery('m1', 'A', 'HTTP 410', 410, 6);
        expect(await store.retryDeadLetter('nope', 7)).toBe(false);
        expect(await store.retryDeadLetter('m1', 700)).toBe(true);
        expect(await store.retryDeadLetter('m1', 700)).toBe(false);
        expect(await store.listDeadLetters(10)).toEqual([]);
        const [back] = await store.listDeliveries(1);
        expect(back).toMatchObject({
          id: 'm1',
          attempts: 0,
          nextAttemptAt: 700,
          createdAt: 1,
          claimedBy: null,
        });
        expect(back?.seq).toBeGreaterThan(m2.seq);
        // it queues behind m2 in its session
        expect((await store.claimDueDeliveries('A', 700, 10, 100)).map((d) => d.id)).toEqual(['m2']);
        await store.completeDelivery('m2', 'A');
        expect((await store.claimDueDeliveries('A', 701, 10, 100)).map((d) => [d.id, d.attempts])).toEqual([
          ['m1', 1],
        ]);
      });

      it('discards a dead letter for good, returning it once, and nothing else', async () => {
        for (let i = 1; i <= 3; i++)
          await store.enqueueDelivery(delivery(`d${i}`, `s${i}`, { createdAt: i }));
        await store.claimDueDeliveries('A', 5, 10, 100);
        await store.deadLetterDelivery('d1', 'A', 'HTTP 410', 410, 6);
        await store.deadLetterDelivery('d2', 'A', 'gone', null, 7);
        const [before] = (await store.listDeadLetters(10)).filter((d) => d.id === 'd1');
        expect(await store.discardDeadLetter('d1')).toEqual(before);
        expect(await store.discardDeadLetter('d1')).toBeNull();
        expect(await store.discardDeadLetter('nope')).toBeNull();
        // A delivery still in the outbox is not a dead letter: left where it is.
        expect(await store.discardDeadLetter('d3')).toBeNull();
        expect((await store.listDeadLetters(10)).map((d) => d.id)).toEqual(['d2']);
        expect((await store.listDeliveries(10)).map((d) => d.id)).toEqual(['d3']);
        // Gone for good: it cannot be retried.
        expect(await store.retryDeadLetter('d1', 8)).toBe(false);
        expect(await store.countPrunable('deadLetters', Number.MAX_SAFE_INTEGER)).toBe(1);
      });

      it("releases one claimer's claims, making them due now", async () => {
        await store.enqueueDelivery(delivery('a1', 'sa', { createdAt: 0 }));
        await store.enqueueDelivery(delivery('a2', 'sb', { createdAt: 0 }));
        await store.enqueueDelivery(delivery('b1', 'sc', { createdAt: 0 }));
        await store.claimDueDeliveries('A', 10, 2, 1000);
        await store.claimDueDeliveries('B', 10, 2, 1000);
        expect((await store.listClaimers()).sort()).toEqual(['A', 'B']);
        expect(await store.releaseClaims('A', 20)).toBe(2);
        expect(await store.listClaimers()).toEqual(['B']);
        expect(await store.releaseClaims('A', 20)).toBe(0);
        const rows = await store.listDeliveries(10);
        expect(rows.map((d) => [d.id, d.claimedBy, d.nextAttemptAt])).toEqual([
          ['b1', 'B', 0],
          ['a2', null, 0],
          ['a1', null, 0],
        ]);
        expect((await store.claimDueDeliveries('C', 21, 10, 1000)).map((d) => d.id)).toEqual(['a1', 'a2']);
      });

      it('release keeps an earlier due time and pulls a later one forward to now', async () => {
        await store.enqueueDelivery(delivery('early', 's1', { createdAt: 100 }));
        await store.enqueueDelivery(delivery('late', 's2', { createdAt: 900 }));
        await store.claimDueDeliveries('A', 900, 10, 1000);
        // released with a clock that lags the claim (another node's clock): min(nextAttemptAt, now)
        expect(await store.releaseClaims('A', 500)).toBe(2);
        const due = new Map((await store.listDeliveries(10)).map((d) => [d.id, d.nextAttemptAt]));
        expect(due).toEqual(
          new Map([
            ['early', 100],
            ['late', 500],
          ]),
        );
      });

      it('reports when the next delivery can be claimed', async () => {
        expect(await store.nextDueAt()).toBeNull();
        await store.enqueueDelivery(delivery('m1', 's', { createdAt: 300 }));
        await store.enqueueDelivery(delivery('m2', 's', { createdAt: 100 }));
        await store.enqueueDelivery(delivery('o1', 'o', { createdAt: 200 }));
        // m2 is blocked behind m1, so it does not count
        expect(await store.nextDueAt()).toBe(200);
        await store.claimDueDeliveries('A', 200, 10, 50);
        expect(await store.nextDueAt()).toBe(251); // o1's lease expires after 250
        await store.completeDelivery('o1', 'A');
        expect(await store.nextDueAt()).toBe(300);
        await store.claimDueDeliveries('A', 300, 10, 1000);
        const due = await store.nextDueAt();
        expect(due).not.toBeNull();
        expect(await store.claimDueDeliveries('B', (due as number) - 1, 10, 1000)).toEqual([]);
        expect((await store.claimDueDeliveries('B', due as number, 10, 1000)).map((d) => d.id)).toEqual([
          'm1',
        ]);
        await store.retryDeliveryLater('m1', 'B', 5000, 'x', null);
        expect(await store.nextDueAt()).toBe(5000);
      });

      it('keeps every session in order under random failures and two claimers', async () => {
        for (const seed of [1, 2, 3, 4, 5]) {
          const s = await open();
          const rand = mulberry32(seed);
          const sessions = ['alpha', 'beta', 'gamma'];
          const enqueued = new Map<string, string[]>(sessions.map((k) => [k, []]));
          for (let i = 0; i < 5; i++) {
            for (const key of sessions) {
              const id = `${key}-${i}`;
              await s.enqueueDelivery(delivery(id, key, { createdAt: i }));
              enqueued.get(key)?.push(id);
            }
          }
          // one interrupt per session, which must not disturb the message order
          for (const key of sessions)
            await s.enqueueDelivery(delivery(`${key}-int`, key, { kind: 'interrupt' }));

          const completed = new Map<string, string[]>(sessions.map((k) => [k, []]));
          const inFlight = new Map<string, string>(); // session → message id currently claimed
          let held: { d: DeliveryRecord; claimer: string }[] = [];
          let now = 10;
          let rounds = 0;
          while ((await s.outboxDepth()) > 0) {
            expect(++rounds).toBeLessThan(2000);
            now += Math.floor(rand() * 3);
            const claimer = rand() < 0.5 ? 'A' : 'B';
            const claimed = await s.claimDueDeliveries(claimer, now, 1 + Math.floor(rand() * 4), 1_000_000);
            for (const d of claimed) {
              if (d.kind === 'message') {
                expect(inFlight.get(d.sessionKey)).toBeUndefined();
                inFlight.set(d.sessionKey, d.id);
              }
              held.push({ d, claimer });
            }
            // Finish a random subset of what is held; the rest stays in flight across rounds.
            const keep: typeof held = [];
            for (const h of held) {
              const roll = rand();
              if (roll < 0.35) {
                keep.push(h);
                continue;
              }
              if (roll < 0.6) {
                const retryAt = now + Math.floor(rand() * 5);
                expect(await s.retryDeliveryLater(h.d.id, h.claimer, retryAt, 'flaky', 503)).toBe(true);
              } else {
                expect(await s.completeDelivery(h.d.id, h.claimer)).toBe(true);
                if (h.d.kind === 'message') completed.get(h.d.sessionKey)?.push(h.d.id);
              }
              if (h.d.kind === 'message') inFlight.delete(h.d.sessionKey);
            }
            held = keep;
          }
          expect(held).toEqual([]);
          expect(completed).toEqual(enqueued);
          await s.close();
        }
      });
    });

    describe('audit', () => {
      it('stores detail as JSON and lists newest first', async () => {
        await store.audit({
          at: 1,
          event: 'a',
          tenantId: 't1',
          gatewayId: 'g1',
          detail: { n: 1, nested: { ok: true } },
        });
        await store.audit({ at: 3, event: 'c' });
        await store.audit({ at: 2, event: 'b', tenantId: null, detail: { list: [1, 'x'] } });
        await store.audit({ at: 3, event: 'd', gatewayId: 'g2' });
        expect(await store.listAudit(10)).toEqual([
          { at: 3, event: 'd', tenantId: null, gatewayId: 'g2' },
          { at: 3, event: 'c', tenantId: null, gatewayId: null },
          { at: 2, event: 'b', tenantId: null, gatewayId: null, detail: { list: [1, 'x'] } },
          { at: 1, event: 'a', tenantId: 't1', gatewayId: 'g1', detail: { n: 1, nested: { ok: true } } },
        ]);
        expect((await store.listAudit(2)).map((e) => e.event)).toEqual(['d', 'c']);
      });

      it("lists one tenant's events, newest first, the limit counting only them", async () => {
        await store.audit({ at: 1, event: 'a1', tenantId: 't1' });
        await store.audit({ at: 2, event: 'b1', tenantId: 't2' });
        await store.audit({ at: 3, event: 'a2', tenantId: 't1', detail: { actor: 'cli' } });
        await store.audit({ at: 4, event: 'none' });
        await store.audit({ at: 5, event: 'a3', tenantId: 't1' });
        await store.audit({ at: 6, event: 'b2', tenantId: 't2' });
        expect(await store.listAudit(10, { tenantId: 't1' })).toEqual([
          { at: 5, event: 'a3', tenantId: 't1', gatewayId: null },
          { at: 3, event: 'a2', tenantId: 't1', gatewayId: null, detail: { actor: 'cli' } },
          { at: 1, event: 'a1', tenantId: 't1', gatewayId: null },
        ]);
        expect((await store.listAudit(2, { tenantId: 't1' })).map((e) => e.event)).toEqual(['a3', 'a2']);
        expect((await store.listAudit(10, { tenantId: 't2' })).map((e) => e.event)).toEqual(['b2', 'b1']);
        expect(await store.listAudit(10, { tenantId: 'nobody' })).toEqual([]);
        expect(await store.listAudit(0, { tenantId: 't1' })).toEqual([]);
        // An undefined tenant is no filter.
        expect((await store.listAudit(3, { tenantId: undefined })).map((e) => e.event)).toEqual([
          'b2',
          'a3',
          'none',
        ]);
      });
    });
  });
}

/**
 * Web-chat history and retention (migration 5), for every {@link RelayStore}: run by
 * test/connector/retention-store.test.ts against SQLite and Postgres.
 */
export function describeHistoryAndRetentionContract(name: string, fresh: () => Promise<RelayStore>): void {
  describe(`${name}: web-chat history and retention contract`, () => {
    let store: RelayStore;
    const opened: RelayStore[] = [];
    beforeEach(async () => {
      store = await fresh();
      opened.push(store);
    });
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
    });
    const entry = (chatId: string, id: string, createdAt: number, clientId: string | null = null) => ({
      chatId,
      id,
      clientId,
      body: JSON.stringify({ id, text: `text of ${id}` }),
      createdAt,
    });

    it('keeps the newest messages of each chat, oldest first', async () => {
      for (let i = 1; i <= 5; i++) await store.appendWebChatMessage(entry('wc-a', `m${i}`, i), 3);
      await store.appendWebChatMessage(entry('wc-b', 'b1', 9), 3);
      expect((await store.listWebChatMessages('wc-a', 10)).map((e) => e.id)).toEqual(['m3', 'm4', 'm5']);
      expect((await store.listWebChatMessages('wc-a', 2)).map((e) => e.id)).toEqual(['m4', 'm5']);
      expect(await store.listWebChatMessages('wc-b', 10)).toEqual([entry('wc-b', 'b1', 9)]);
      expect(await store.listWebChatMessages('wc-none', 10)).toEqual([]);
      expect(await store.getWebChatMessage('wc-a', 'm1')).toBeNull();
      expect(await store.getWebChatMessage('wc-a', 'm4')).toEqual(entry('wc-a', 'm4', 4));
    });

    it('stores a clientId once per chat: the repeat answers the first entry', async () => {
      const first = await store.appendWebChatMessage(entry('wc-a', 'u1', 1, 'c1'), 10);
      expect(first).toEqual({ entry: entry('wc-a', 'u1', 1, 'c1'), inserted: true });
      const again = await store.appendWebChatMessage(entry('wc-a', 'u2', 2, 'c1'), 10);
      expect(again).toEqual({ entry: entry('wc-a', 'u1', 1, 'c1'), inserted: false });
      // Another visitor's chat with the same clientId is its own message.
      expect((await store.appendWebChatMessage(entry('wc-b', 'u3', 3, 'c1'), 10)).inserted).toBe(true);
      expect((await store.listWebChatMessages('wc-a', 10)).map((e) => e.id)).toEqual(['u1']);
    });

    it('replaces a body compare-and-set, and deletes by id', async () => {
      await store.appendWebChatMessage(entry('wc-a', 'm1', 1), 10);
      await store.appendWebChatMessage(entry('wc-a', 'm2', 2), 10);
      const before = entry('wc-a', 'm1', 1).body;
      expect(await store.replaceWebChatMessage('wc-a', 'm1', before, '{"v":2}')).toBe(true);
      expect(await store.replaceWebChatMessage('wc-a', 'm1', before, '{"v":3}')).toBe(false);
      expect((await store.getWebChatMessage('wc-a', 'm1'))?.body).toBe('{"v":2}');
      expect(await store.replaceWebChatMessage('wc-b', 'm1', '{"v":2}', '{"v":4}')).toBe(false);
      expect(await store.deleteWebChatMessages('wc-a', ['m1', 'nope'])).toBe(1);
      expect(await store.deleteWebChatMessages('wc-a', [])).toBe(0);
      expect((await store.listWebChatMessages('wc-a', 10)).map((e) => e.id)).toEqual(['m2']);
    });

    it('counts and prunes each kind by age, in bounded batches, oldest first', async () => {
      const tenant = await store.createTenant('acme', 0);
      for (let i = 0; i < 5; i++) {
        await store.audit({ at: i * 10, event: `e${i}` });
        await store.recordChat({
          tenantId: tenant.id,
          platform: 'webchat',
          chatId: `c${i}`,
          routeKey: 'r',
          updatedAt: i * 10,
        });
        await store.appendWebChatMessage(entry(`wc-${i}`, `m${i}`, i * 10), 10);
        await store.putPlatformState(`k${i}`, 'v', i * 10);
        await store.enqueueDelivery(delivery(`d${i}`, `s${i}`));
      }
      const claimed = await store.claimDueDeliveries('me', 0, 10, 1_000);
      expect(claimed).toHaveLength(5);
      for (const [i, d] of claimed.entries()) await store.deadLetterDelivery(d.id, 'me', 'gone', 410, i * 10);

      // Older than 25: rows at 0, 10, 20; platform state expired at 25: the same three.
      for (const kind of PRUNE_KINDS) expect(await store.countPrunable(kind, 25)).toBe(3);
      for (const kind of PRUNE_KINDS) {
        expect(await store.prune(kind, 25, 2)).toBe(2);
        expect(await store.countPrunable(kind, 25)).toBe(1);
        expect(await store.prune(kind, 25, 2)).toBe(1);
        expect(await store.prune(kind, 25, 2)).toBe(0);
        expect(await store.prune(kind, 1_000, 0)).toBe(0);
      }
      expect((await store.listAudit(10)).map((e) => e.event)).toEqual(['e4', 'e3']);
      expect((await store.listDeadLetters(10)).map((d) => d.deadAt).sort()).toEqual([30, 40]);
      expect(await store.findChat(tenant.id, 'c2')).toBeNull();
      expect(await store.findChat(tenant.id, 'c3')).not.toBeNull();
      expect(await store.listWebChatMessages('wc-2', 10)).toEqual([]);
      expect(await store.listWebChatMessages('wc-3', 10)).toHaveLength(1);
      // platform_state at 30 is live at 25 and stays.
      expect(await store.getPlatformState('k3', 25)).toBe('v');
      // An exact boundary: a row at the cutoff is not older than it (platform state: expired at it).
      expect(await store.countPrunable('audit', 30)).toBe(0);
      expect(await store.countPrunable('platformState', 30)).toBe(1);
    });

    it('keeps a chat recorded again since (touched rows are not pruned)', async () => {
      const tenant = await store.createTenant('acme', 0);
      await store.recordChat({
        tenantId: tenant.id,
        platform: 'telegram',
        chatId: '1',
        routeKey: '*',
        updatedAt: 1,
      });
      await store.recordChat({
        tenantId: tenant.id,
        platform: 'telegram',
        chatId: '1',
        routeKey: '*',
        updatedAt: 100,
      });
      expect(await store.prune('chats', 50, 10)).toBe(0);
      expect(await store.findChat(tenant.id, '1')).not.toBeNull();
    });

    it('prunes each row once when several prune at once', async () => {
      for (let i = 0; i < 60; i++) await store.audit({ at: i, event: `e${i}` });
      // Four pruners side by side (on Postgres, each on its own pooled connection).
      const removed = await Promise.all(
        [1, 2, 3, 4].map(async () => {
          let total = 0;
          for (;;) {
            const n = await store.prune('audit', 1_000, 7);
            if (n === 0) return total;
            total += n;
          }
        }),
      );
      expect(removed.reduce((a, b) => a + b, 0)).toBe(60);
      expect(await store.listAudit(100)).toEqual([]);
    });
  });
}
