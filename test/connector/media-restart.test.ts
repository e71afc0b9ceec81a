import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintUpgradeToken } from '../../src/auth/index.js';
import {
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  tempDir,
  until,
} from '../support/processes.js';

/**
 * Media outlive a connector restart within their time to live and are gone after it (real
 * processes; the TTL shortened to 10 s with RELAY_MEDIA_TTL_SECONDS).
 */

const dir = tempDir('media-restart');
const db = join(dir.path, 'connector.db');
const mediaDir = join(dir.path, 'media');
const env = { RELAY_MEDIA_DIR: mediaDir, RELAY_MEDIA_TTL_SECONDS: '10' };
let connector: RunningProcess & { url: string };
let secret = '';

beforeAll(async () => {
  const { accessToken } = await hermesJson<{ accessToken: string }>([
    'connector',
    'tenant',
    'create',
    'm',
    '--db',
    db,
  ]);
  connector = await startConnectorProcess(db, env);
  const response = await fetch(`${connector.url}/relay/provision`, {
    method: 'POST',
    headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ gatewayId: 'gw-media', platform: 'webchat' }),
  });
  secret = ((await response.json()) as { secret: string }).secret;
});

afterAll(async () => {
  await connector?.stop();
  dir.remove();
});

describe('media across a restart', () => {
  it('serves an upload after the connector restarts, and forgets it once its time is up', async () => {
    const bearer = () => `Bearer ${mintUpgradeToken('gw-media', secret)}`;
    const bytes = randomBytes(50_000);
    const uploaded = await fetch(`${connector.url}/relay/media`, {
      method: 'POST',
      headers: { authorization: bearer(), 'content-type': 'application/pdf', 'x-media-filename': 'r.pdf' },
      body: bytes,
    });
    const { id } = (await uploaded.json()) as { id: string };

    await connector.stop();
    connector = await startConnectorProcess(db, env);
    const after = await fetch(`${connector.url}/relay/media/${id}`, { headers: { authorization: bearer() } });
    expect(after.status).toBe(200);
    expect(after.headers.get('content-type')).toBe('application/pdf');
    expect(Buffer.from(await after.arrayBuffer()).equals(bytes)).toBe(true);

    await until(
      async () =>
        (await fetch(`${connector.url}/relay/media/${id}`, { headers: { authorization: bearer() } }))
          .status === 404 || undefined,
      30_000,
      'the media expired',
      250,
    );
    expect(existsSync(mediaDir) ? readdirSync(mediaDir).filter((name) => name.startsWith(id)) : []).toEqual(
      [],
    );
  });
});
