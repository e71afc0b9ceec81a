/**
 * Run by test/cli/package.test.ts with plain `node` (no vitest transform) in a folder where the
 * packed hermes-relay is installed, beside `examples/` (docs/examples compiled by the test). It
 * uses only the package's public entry points (and the docs' examples built on them) and prints one
 * JSON report on stdout.
 *
 * Usage: node package-consumer.mjs <temp dir for the store and the gateway home>
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import * as main from 'hermes-relay';
import * as connector from 'hermes-relay/connector';
import * as gateway from 'hermes-relay/gateway';
import * as protocol from 'hermes-relay/protocol';
import { ConsoleAdapter } from './examples/console-adapter.js';
import { runGateway } from './examples/embed-gateway.js';

const dir = process.argv[2];
if (!dir) throw new Error('usage: node package-consumer.mjs <temp dir>');
const report = {};

report.version = createRequire(import.meta.url)('hermes-relay/package.json').version;
report.mainReexports =
  main.startConnector === connector.startConnector &&
  main.startGateway === gateway.startGateway &&
  main.parseGatewayFrame === protocol.parseGatewayFrame;
try {
  await import('hermes-relay/dist/src/connector/connector.js');
  report.deepImport = 'allowed';
} catch (error) {
  report.deepImport = error.code;
}

// The wire contract: schemas parse and refuse frames.
report.hello = protocol.HelloFrameSchema.parse({ type: 'hello' });
report.invalidFrame = protocol.parseGatewayFrame({ type: 'outbound', requestId: '' }).kind;
report.sessionKey = protocol.buildSessionKey({
  platform: 'local',
  chat_id: 'console',
  chat_type: 'dm',
  user_id: 'you',
});

// A connector in this process: SQLite in the temp dir, port 0, the built-in adapters plus the
// docs' console adapter; a tenant whose console route names the gateway enrolled below.
const log = connector.createLogger('silent', 'embedded');
const config = connector.connectorConfigFromEnv(
  {},
  { host: '127.0.0.1', port: 0, db: join(dir, 'connector.db') },
);
const store = await connector.openStore(config.db);
const { accessToken } = await connector.createTenant(store, 'acme');
await connector.addRoute(store, {
  tenantRef: 'acme',
  platform: 'local',
  routeKey: 'console',
  gatewayId: 'gw-embedded',
});
const { token } = await connector.createEnrollmentToken(store, 'acme', 10 * 60_000);
const input = new PassThrough();
const output = new PassThrough();
let printed = '';
output.on('data', (chunk) => {
  printed += chunk.toString('utf8');
});
const running = await connector.startConnector({
  config,
  store,
  adapters: [...connector.buildAdapters(config, log), new ConsoleAdapter({ input, output })],
  log,
  version: connector.VERSION,
});
try {
  report.connectorUrl = running.url;
  report.healthz = (await fetch(`${running.url}/healthz`)).status;
  report.chatPage = (await fetch(`${running.url}/chat/lobby`)).status;

  // A gateway in this process, as the docs' example starts it: enrolled over HTTP with the tenant's
  // token (through the gateway entry's enrollGateway), then started with the echo agent.
  const agent = await runGateway({
    connectorUrl: running.url,
    token,
    portalToken: accessToken,
    home: join(dir, 'gateway-home'),
  });
  report.enrolled = (await connector.listGatewaySummaries(store)).map((summary) => summary.id);

  // A line typed on the console platform goes through the connector and the gateway's echo agent,
  // and its reply comes back through the adapter's `send`.
  input.write('hello from the console\n');
  const deadline = Date.now() + 20_000;
  while (!printed.includes('echo: hello from the console') && Date.now() < deadline) await sleep(50);
  report.printed = printed;
  report.gatewayExit = await agent.stop('planned');
} finally {
  await running.stop();
}
process.stdout.write(`${JSON.stringify(report)}\n`);
