// Screenshots of the connector admin console (/admin) with sample data, for the README:
// docs/images/admin-console.png (1280×800) and docs/images/admin-console-mobile.png (390×844).
// Run by hand after `npm run build` (not part of `npm test`):
//
//   node scripts/screenshots-admin.mjs
//
// It starts `hermes connector serve` on 127.0.0.1 with a fresh store in a temporary folder and a
// random admin token, fills it through the admin API (tenants, gateways — one connected over a
// socket — routes, a dead letter), signs in with headless Chromium (/usr/bin/chromium, or
// HERMES_TEST_CHROMIUM) and saves the two PNGs. Everything is removed afterwards.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import { mintUpgradeToken } from '../dist/src/auth/upgrade-token.js';
import { encodeLine } from '../dist/src/protocol/framing.js';

const CHROMIUM = process.env.HERMES_TEST_CHROMIUM || '/usr/bin/chromium';
const OUT = 'docs/images';
const TOKEN = randomBytes(32).toString('base64url');
const dir = mkdtempSync(join(tmpdir(), 'admin-shots-'));
const db = join(dir, 'connector.db');

const connector = spawn(
  process.execPath,
  ['dist/src/cli/main.js', 'connector', 'serve', '--port', '0', '--db', db],
  {
    env: { ...process.env, RELAY_ADMIN_TOKEN: TOKEN, RELAY_ADMIN_TOKEN_FILE: '', RELAY_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  },
);
const sockets = [];
let browser;

try {
  const base = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the connector did not start:\n${out}`)), 45_000);
    const onData = (chunk) => {
      out += chunk;
      const match = /connector listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    connector.stdout.on('data', onData);
    connector.stderr.on('data', onData);
    connector.once('exit', (code) => reject(new Error(`the connector exited with ${code}:\n${out}`)));
  });

  const api = async (path, body) => {
    const response = await fetch(`${base}/admin/api${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: {
        authorization: `Bearer ${TOKEN}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await response.json();
    if (!response.ok) throw new Error(`${path}: ${json.error}`);
    return json;
  };

  const tenants = {};
  for (const name of ['acme', 'globex', 'initech']) tenants[name] = await api('/tenants', { name });

  const enroll = async (tenant, gatewayId) => {
    const { token } = await api(`/tenants/${tenant}/enroll-tokens`, {});
    const response = await fetch(`${base}/relay/enroll`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tenants[tenant].accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ enrollmentToken: token, gatewayId }),
    });
    if (!response.ok) throw new Error(`enroll ${gatewayId}: HTTP ${response.status}`);
    return response.json();
  };
  const connect = async ({ gatewayId, secret }) => {
    const ws = new WebSocket(`${base.replace('http', 'ws')}/relay`, {
      headers: { authorization: `Bearer ${mintUpgradeToken(gatewayId, secret, 300)}` },
    });
    sockets.push(ws);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.send(encodeLine({ type: 'hello', platform: 'relay', botId: '' }));
  };

  const prod = await enroll('acme', 'gw-acme-prod');
  const staging = await enroll('acme', 'gw-acme-staging');
  const globex = await enroll('globex', 'gw-globex');
  await enroll('initech', 'gw-initech-old');
  await connect(prod);
  await connect(globex);
  await api('/gateways/gw-initech-old/revoke', { confirm: 'gw-initech-old' });
  await api('/gateways/gw-acme-staging/rotate', {});
  void staging;
  await api('/routes', { tenant: 'acme', platform: 'webchat', key: 'support', gateway: 'gw-acme-prod' });
  await api('/routes', { tenant: 'globex', platform: 'webchat', key: 'sales' });

  // A dead letter as the delivery engine leaves one (straight into the table).
  const raw = new Database(db);
  try {
    raw
      .prepare(
        `INSERT INTO dead_letters (id, seq, tenant_id, gateway_id, session_key, kind, body, endpoint, created_at,
                                   attempts, reason, last_status, dead_at)
         VALUES ('dl-7f3a', 1, ?, 'gw-globex', 'webchat:sales:v-1', 'message', '{}', 'https://globex.example/relay', ?, 8, 'HTTP 410 Gone', 410, ?)`,
      )
      .run(tenants.globex.id, Date.now() - 3_600_000, Date.now() - 1_800_000);
  } finally {
    raw.close();
  }

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
    ],
  });
  mkdirSync(OUT, { recursive: true });
  const shots = [
    ['admin-console.png', { width: 1280, height: 800 }],
    ['admin-console-mobile.png', { width: 390, height: 844 }],
  ];
  for (const [name, viewport] of shots) {
    const context = await browser.newContext({ viewport, colorScheme: 'light' });
    const page = await context.newPage();
    await page.goto(`${base}/admin`);
    await page.locator('#token').fill(TOKEN);
    await page.getByRole('button', { name: 'Open the console' }).click();
    await page.locator('#live').filter({ hasText: 'Live' }).waitFor();
    await page.locator('#count-connected').filter({ hasText: /^2$/ }).waitFor();
    await page.locator('#dead tbody tr').first().waitFor();
    await page.locator('#audit tbody tr').first().waitFor();
    await page.evaluate(() => document.activeElement?.blur());
    const path = join(OUT, name);
    await page.screenshot({ path });
    console.log(
      `${path}: ${viewport.width}×${viewport.height}, ${Math.round(statSync(path).size / 1024)} KB`,
    );
    await context.close();
  }
} finally {
  for (const ws of sockets) ws.close();
  await browser?.close();
  connector.kill('SIGTERM');
  await new Promise((resolve) => (connector.exitCode === null ? connector.once('exit', resolve) : resolve()));
  rmSync(dir, { recursive: true, force: true });
}
