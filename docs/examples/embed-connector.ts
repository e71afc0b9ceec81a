/**
 * Embed the connector in your own process: the built-in platforms (web chat, and Telegram/Discord
 * when their tokens are set) plus a platform adapter of your own, one tenant, its routes, and a
 * one-hour enrollment token for the tenant's gateway. Stops cleanly on Ctrl-C.
 *
 *   node embed-connector.js            # then open http://127.0.0.1:8700/chat/lobby
 */
import {
  addRoute,
  buildAdapters,
  connectorConfigFromEnv,
  createEnrollmentToken,
  createLogger,
  createTenant,
  openStore,
  startConnector,
  VERSION,
} from 'hermes-relay/connector';
import { ConsoleAdapter } from './console-adapter.js';

// The configuration `hermes connector serve` would use (the RELAY_* variables, see docs/deploy.md),
// with our own bind address, port and store: a SQLite file, or a postgres:// URL for several instances.
const config = connectorConfigFromEnv(process.env, {
  host: '127.0.0.1',
  port: 8700,
  db: './relay-data/embedded.db',
});
const log = createLogger(config.logLevel, 'connector');
const store = await openStore(config.db);

// A tenant with a web-chat room and the console (platform "local") routed to it. The first run
// prints its access token (the gateway's HERMES_PORTAL_TOKEN for enrollment); a second run finds
// the tenant in the store.
if (!(await store.findTenantByName('acme'))) {
  const { accessToken } = await createTenant(store, 'acme');
  process.stdout.write(`tenant acme created; access token (shown once): ${accessToken}\n`);
}
await addRoute(store, { tenantRef: 'acme', platform: 'webchat', routeKey: 'lobby' });
await addRoute(store, { tenantRef: 'acme', platform: 'local', routeKey: 'console' });
const { token } = await createEnrollmentToken(store, 'acme', 60 * 60_000);

const connector = await startConnector({
  config,
  store,
  adapters: [...buildAdapters(config, log), new ConsoleAdapter()],
  log,
  version: VERSION,
});
process.stdout.write(
  `connector on ${connector.url}; web chat: ${connector.url}/chat/lobby\n` +
    `enroll the gateway: HERMES_PORTAL_TOKEN=<access token> hermes gateway enroll --connector-url ${connector.url} --token ${token}\n` +
    'then run it (hermes gateway run) and type here: each line is a message on the "local" platform\n',
);

// `stop` ends the adapters, the sockets and the delivery engine, then closes the store.
process.once('SIGINT', () => {
  void connector.stop().then(() => process.exit(0));
});
