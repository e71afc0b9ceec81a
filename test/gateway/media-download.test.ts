import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isConnectorMediaUrl, MediaDownloader } from '../../src/gateway/media-download.js';
import { MessageEventSchema } from '../../src/protocol/index.js';
import { tempDir } from '../support/processes.js';

/** Inbound files fetched on receipt for agents, with the bearer only for the connector's own URLs. */

const dir = tempDir('media-download');
const ID = 'ab'.repeat(16);
const BYTES = Buffer.from('the picture bytes');
let server: Server;
let base: string;
const seen: { url: string; authorization: string | undefined }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', authorization: req.headers.authorization });
    if (req.url === `/relay/media/${ID}` && req.headers.authorization?.startsWith('Bearer '))
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': BYTES.length }).end(BYTES);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  dir.remove();
});

describe('MediaDownloader', () => {
  it('fetches a re-host into the home with the bearer, leaves other URLs alone, and ignores a local_path from the wire', async () => {
    const downloader = new MediaDownloader({
      relayUrl: `${base.replace('http', 'ws')}/relay`,
      credentials: () => ({ gatewayId: 'gw-1', secret: 's'.repeat(64) }),
      dir: join(dir.path, 'media'),
      log: pino({ level: 'silent' }),
    });
    const event = MessageEventSchema.parse({
      text: '',
      media_urls: [`${base}/relay/media/${ID}`, 'https://cdn.example/public.png'],
      media: [
        { url: `${base}/relay/media/${ID}`, kind: 'image', local_path: '/etc/passwd' },
        { url: 'https://cdn.example/public.png', kind: 'image', local_path: '/etc/shadow' },
      ],
      source: { platform: 'telegram', chat_id: '1' },
    });
    const localized = (await downloader.localize(event)).media as { url: string; local_path?: string }[];
    expect(localized[0]?.local_path).toBe(join(dir.path, 'media', ID));
    expect(readFileSync(localized[0]?.local_path as string).equals(BYTES)).toBe(true);
    expect(localized[1]).not.toHaveProperty('local_path');
    expect(seen.map((s) => s.url)).toEqual([`/relay/media/${ID}`]);
    expect(seen[0]?.authorization).toMatch(/^Bearer /);
  });

  it('sends the bearer only to the connector’s own /relay/media/ URLs (current §14 case 34)', () => {
    const relay = 'https://conn.example/relay';
    expect(isConnectorMediaUrl(`https://conn.example/relay/media/${ID}`, relay)).toBe(true);
    for (const url of [
      `https://attacker.com/relay/media/${ID}`,
      `https://conn.example:8443/relay/media/${ID}`,
      `https://conn.example/relay/mediafile`,
      `http://conn.example/relay/media/${ID}`,
      `file:///relay/media/${ID}`,
      `javascript:alert(1)`,
      `data:text/plain,x`,
    ])
      expect(isConnectorMediaUrl(url, relay), url).toBe(false);
  });
});
