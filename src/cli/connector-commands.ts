import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { errorMessage } from '../common/errors.js';
import { redactUrl } from '../common/redact.js';
import {
  AdminError,
  type AuditActor,
  addRoute,
  auditViews,
  createdTenantView,
  createEnrollmentToken,
  createTenant,
  deadLetterViews,
  deliveryKeyView,
  deliveryViews,
  discardDeadLetter,
  enrollmentTokenView,
  issueTenantToken,
  listGatewaySummaries,
  retryDeadLetter,
  revokeGateway,
  rotateDeliveryKey,
  rotateGatewaySecret,
  routeViews,
  tenantTokenView,
  tenantViews,
} from '../connector/admin.js';
import type { ClusterEvent } from '../connector/cluster/bus.js';
import { publishClusterEvent } from '../connector/cluster/redis-bus.js';
import {
  type ConnectorConfig,
  ConnectorConfigError,
  connectorConfigFromEnv,
  connectorDbFromEnv,
  parsePort,
  privateTargetsFromEnv,
  retentionFromEnv,
} from '../connector/config.js';
import { startConnector } from '../connector/connector.js';
import { BUILTIN_PLATFORMS, buildAdapters } from '../connector/platforms/build-adapters.js';
import { countPrunable, type PruneCounts, pruneCutoffs, pruneOnce } from '../connector/retention.js';
import { isPostgresUrl, openStore } from '../connector/store/open.js';
import type { RelayStore } from '../connector/store/types.js';
import { ENROLLMENT_TOKEN_TTL_SECONDS, ROTATION_WINDOW_SECONDS } from '../protocol/index.js';
import { CliError } from './errors.js';
import { isoTime, parseDuration, printJson, printTable } from './format.js';
import { registerConnectorServiceCommands } from './gateway-service-commands.js';
import { createLogger, logLevelFor, redactUrlsIn } from './logger.js';
import { confirmIrreversible } from './prompt.js';
import { serveUntilSignal } from './serve-until-signal.js';
import { VERSION } from './version.js';

interface DbOption {
  db?: string;
  json?: boolean;
}

/** The audit log's actor for what these commands change. */
const CLI: AuditActor = { actor: 'cli' };

/** `--limit`: a whole number from 1 to 10,000. */
function parseLimit(value: string): number {
  const limit = Number(value);
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
    throw new CliError(`--limit must be a whole number from 1 to 10000, got "${value}"`, 2);
  return limit;
}

function withDb(command: Command): Command {
  return command
    .option('--db <path>', 'SQLite file (default: $RELAY_DB or ./relay-data/connector.db)')
    .option('--json', 'print JSON');
}

/**
 * Open the store named by `--db` (else `RELAY_DB`, else the default file) for an admin command.
 * A SQLite file that does not exist is refused (a mistyped path must not become a new, empty
 * store whose `(none)` looks like an answer) unless the command creates the store (`create`).
 */
async function useStore<T>(
  options: DbOption,
  work: (store: RelayStore) => Promise<T>,
  { create = false }: { create?: boolean } = {},
): Promise<T> {
  const db = connectorDbFromEnv(process.env, options.db);
  if (!create && !isPostgresUrl(db) && db !== ':memory:' && !existsSync(db))
    throw new CliError(
      `no connector store at ${db}: check --db (or RELAY_DB); \`hermes connector serve\` or \`hermes connector tenant create\` creates one`,
    );
  let store: RelayStore;
  try {
    store = await openStore(db);
  } catch (error) {
    throw new CliError(
      redactUrlsIn(`cannot open the connector store at ${redactUrl(db)}: ${errorMessage(error)}`),
    );
  }
  try {
    return await work(store);
  } catch (error) {
    if (error instanceof AdminError) throw new CliError(error.message);
    throw error;
  } finally {
    await store.close();
  }
}

/**
 * Tell running connector instances at once (RELAY_REDIS_URL). Without a bus, or if Redis is down,
 * they still notice through the store: revocations within a second, rotations on next use.
 */
async function tellCluster(event: ClusterEvent): Promise<void> {
  const url = process.env.RELAY_REDIS_URL?.trim();
  if (!url) return;
  try {
    await publishClusterEvent(url, event, createLogger('silent', 'connector'));
  } catch (error) {
    process.stderr.write(
      `warning: could not tell the cluster through Redis (${errorMessage(error)}); running connectors pick the change up from the store\n`,
    );
  }
}

export function registerConnectorCommands(program: Command): void {
  const connector = program
    .command('connector')
    .description('the relay server: platforms, tenants, gateway credentials, durable delivery');
  registerConnectorServiceCommands(connector);

  connector
    .command('serve')
    .description('run the connector in the foreground')
    .option('--host <host>', 'bind address (default 127.0.0.1)')
    .option('--port <port>', 'port (default 8700)')
    .option('--db <path>', 'SQLite file (default ./relay-data/connector.db)')
    .addHelpText('after', '\nExample:\n  hermes connector serve --port 8700 --db ./relay-data/connector.db\n')
    .action(async (options: { host?: string; port?: string; db?: string }) => {
      const port = options.port === undefined ? undefined : parsePort(options.port);
      if (options.port !== undefined && port === undefined)
        throw new CliError(`--port must be a number from 0 to 65535, got "${options.port}"`, 2);
      let config: ConnectorConfig;
      try {
        config = connectorConfigFromEnv(process.env, { host: options.host, port, db: options.db });
      } catch (error) {
        // 78 (EX_CONFIG): the systemd unit's RestartPreventExitStatus=78 does not retry a bad setting.
        if (error instanceof ConnectorConfigError) throw new CliError(error.message, 78);
        throw error;
      }
      const log = createLogger(logLevelFor('connector', undefined, { exitCode: 78 }), 'connector');
      let store: RelayStore;
      try {
        store = await openStore(config.db, {
          backgroundCheckpoints: { onError: (message) => log.warn(message) },
        });
      } catch (error) {
        throw new CliError(
          redactUrlsIn(`cannot open the connector store at ${redactUrl(config.db)}: ${errorMessage(error)}`),
        );
      }
      let running: Awaited<ReturnType<typeof startConnector>>;
      try {
        running = await startConnector({
          config,
          store,
          adapters: buildAdapters(config, log),
          log,
          version: VERSION,
        });
      } catch (error) {
        await store.close().catch(() => undefined);
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE')
          throw new CliError(
            `port ${config.port} on ${config.host} is already in use; pick another with --port`,
          );
        if (code === 'EACCES') throw new CliError(`not allowed to listen on ${config.host}:${config.port}`);
        throw error;
      }
      await serveUntilSignal(
        running,
        `connector listening on ${running.url} (relay: ${running.url.replace(/^http/, 'ws')}/relay)\n`,
        { announce: true },
      );
    });

  const tenant = connector.command('tenant').description('tenants and their access tokens');
  withDb(tenant.command('create <name>'))
    .description('create a tenant and print its access token (shown once)')
    .addHelpText('after', '\nExample:\n  hermes connector tenant create acme\n')
    .action((name: string, options: DbOption) =>
      useStore(
        options,
        async (store) => {
          const result = await createTenant(store, name, Date.now(), CLI);
          const { tenant: created, accessToken } = result;
          if (options.json) return printJson(createdTenantView(result));
          process.stdout.write(
            `tenant ${created.name} created: ${created.id}\naccess token (shown once; the bearer for /relay/enroll and /relay/provision):\n  ${accessToken}\n`,
          );
        },
        // The first command of a new deployment: it creates the store.
        { create: true },
      ),
    );
  withDb(tenant.command('list'))
    .description('list tenants')
    .action((options: DbOption) =>
      useStore(options, async (store) => {
        const tenants = await tenantViews(store);
        if (options.json) return printJson(tenants);
        printTable(
          tenants.map((t) => ({ id: t.id, name: t.name, created: isoTime(t.createdAt) })),
          ['id', 'name', 'created'],
        );
      }),
    );
  withDb(tenant.command('token <tenant>'))
    .description('issue another access token for a tenant (shown once)')
    .action((tenantRef: string, options: DbOption) =>
      useStore(options, async (store) => {
        const issued = await issueTenantToken(store, tenantRef, Date.now(), CLI);
        const { tenant: found, accessToken } = issued;
        if (options.json) return printJson(tenantTokenView(issued));
        process.stdout.write(`access token for ${found.name} (shown once):\n  ${accessToken}\n`);
      }),
    );

  const enrollToken = connector.command('enroll-token').description('single-use enrollment tokens');
  withDb(enrollToken.command('create'))
    .description('mint a single-use enrollment token for a gateway of a tenant')
    .requiredOption('--tenant <tenant>', 'tenant id or name')
    .option('--ttl <duration>', 'lifetime, e.g. 30m, 24h, 7d', `${ENROLLMENT_TOKEN_TTL_SECONDS / 3600}h`)
    .addHelpText('after', '\nExample:\n  hermes connector enroll-token create --tenant acme --ttl 24h\n')
    .action((options: DbOption & { tenant: string; ttl: string }) =>
      useStore(options, async (store) => {
        const ttlMs = parseDuration(options.ttl);
        if (!ttlMs) throw new CliError(`--ttl must look like 30m, 24h or 7d, got "${options.ttl}"`, 2);
        const minted = await createEnrollmentToken(store, options.tenant, ttlMs, Date.now(), CLI);
        const { tenant: owner, token, expiresAt } = minted;
        if (options.json) return printJson(enrollmentTokenView(minted));
        process.stdout.write(
          `enrollment token for ${owner.name} (single use, expires ${isoTime(expiresAt)}):\n  ${token}\n` +
            'redeem it on the gateway with: hermes gateway enroll --token <token> --connector-url <url>\n',
        );
      }),
    );

  const gateway = connector.command('gateway').description('enrolled gateways');
  withDb(gateway.command('list'))
    .description('list gateways')
    .option('--tenant <tenant>', 'only this tenant (id)')
    .action((options: DbOption & { tenant?: string }) =>
      useStore(options, async (store) => {
        const rows = await listGatewaySummaries(store, options.tenant);
        if (options.json) return printJson(rows);
        printTable(
          rows.map((row) => ({
            ...row,
            identities: row.identities.join(' '),
            idle: row.idleSince ? `since ${row.idleSince}` : 'no',
            lastSeen: row.lastSeen ?? '-',
          })),
          [
            'id',
            'tenant',
            'generation',
            'identities',
            'endpoint',
            'idle',
            'buffered',
            'revoked',
            'rotating',
            'connected',
            'lastSeen',
          ],
        );
      }),
    );
  withDb(gateway.command('revoke <id>'))
    .description('kill switch: close its live socket with 4401 and refuse its upgrades from now on')
    .option('--yes', 'do not ask (required when input is not a terminal)')
    .action((id: string, options: DbOption & { yes?: boolean }) =>
      useStore(options, async (store) => {
        if (!(await store.getGateway(id)))
          throw new CliError(`no gateway "${id}" (list them with: hermes connector gateway list)`);
        await confirmIrreversible(`revoking gateway ${id}`, options);
        const revoked = await revokeGateway(store, id, Date.now(), CLI);
        await tellCluster({ type: 'revoked', gatewayId: revoked.id });
        if (options.json) return printJson({ id: revoked.id, revoked: true });
        process.stdout.write(
          `gateway ${revoked.id} revoked; a running connector closes its socket within a second\n`,
        );
      }),
    );
  withDb(gateway.command('rotate <id>'))
    .description('new per-gateway secret; the old one stays valid for the rotation window (24 h)')
    .action((id: string, options: DbOption) =>
      useStore(options, async (store) => {
        const { secret } = await rotateGatewaySecret(
          store,
          id,
          ROTATION_WINDOW_SECONDS * 1000,
          Date.now(),
          CLI,
        );
        if (options.json) return printJson({ id, secret });
        process.stdout.write(
          `new secret for ${id} (shown once; set GATEWAY_RELAY_SECRET on the gateway):\n  ${secret}\n`,
        );
      }),
    );

  const deliveryKey = connector.command('delivery-key').description('tenant delivery keys');
  withDb(deliveryKey.command('rotate'))
    .description('new delivery key; the old one stays valid for the rotation window (24 h)')
    .requiredOption('--tenant <tenant>', 'tenant id or name')
    .action((options: DbOption & { tenant: string }) =>
      useStore(options, async (store) => {
        const rotated = await rotateDeliveryKey(
          store,
          options.tenant,
          ROTATION_WINDOW_SECONDS * 1000,
          Date.now(),
          CLI,
        );
        const { tenant: owner, keys } = rotated;
        await tellCluster({ type: 'keys_rotated', tenantId: owner.id });
        if (options.json) return printJson(deliveryKeyView(rotated));
        process.stdout.write(
          `new delivery key for ${owner.name} (shown once):\n  ${keys.primary}\n` +
            'the connector keeps signing with the previous key for 24 h: within that window set on each gateway\n' +
            '  GATEWAY_RELAY_DELIVERY_KEY=<this key>  GATEWAY_RELAY_DELIVERY_KEY_SECONDARY=<the previous key>\n',
        );
      }),
    );

  const route = connector.command('route').description('platform discriminators → tenants');
  withDb(route.command('add'))
    .description('bind a platform discriminator (chat id, web-chat room, "*" for the default) to a tenant')
    .requiredOption('--tenant <tenant>', 'tenant id or name')
    .requiredOption('--platform <platform>', BUILTIN_PLATFORMS.join(', '))
    .requiredOption('--key <key>', 'the discriminator')
    .option('--endpoint <url>', "the gateway's signed-delivery URL (omit: deliver over its socket)")
    .option('--gateway <id>', 'prefer this gateway for socket delivery')
    .option('--custom-platform', 'allow a platform no built-in adapter serves (an embedded adapter of yours)')
    .addHelpText(
      'after',
      '\nExample:\n  hermes connector route add --tenant acme --platform telegram --key -100123456\n',
    )
    .action(
      (
        options: DbOption & {
          tenant: string;
          platform: string;
          key: string;
          endpoint?: string;
          gateway?: string;
          customPlatform?: boolean;
        },
      ) => {
        if (!options.customPlatform && !BUILTIN_PLATFORMS.includes(options.platform))
          throw new CliError(
            `--platform ${options.platform}: no adapter of this connector serves it (${BUILTIN_PLATFORMS.join(', ')}); for a platform an embedded adapter of yours serves, add --custom-platform`,
            2,
          );
        return useStore(options, async (store) => {
          const added = await addRoute(
            store,
            {
              tenantRef: options.tenant,
              platform: options.platform,
              routeKey: options.key,
              endpoint: options.endpoint,
              gatewayId: options.gateway,
              // The connector's setting, read where the operator runs this (its environment).
              allowPrivateTargets: privateTargetsFromEnv(process.env),
            },
            Date.now(),
            CLI,
          );
          if (options.json) return printJson(added);
          process.stdout.write(
            `route ${added.platform}:${added.routeKey} → ${added.tenantId}${added.endpoint ? ` (${added.endpoint})` : ' (socket)'}\n`,
          );
        });
      },
    );
  withDb(route.command('list'))
    .description('list routes')
    .action((options: DbOption) =>
      useStore(options, async (store) => {
        const routes = await routeViews(store);
        if (options.json) return printJson(routes);
        printTable(
          routes.map((r) => ({
            platform: r.platform,
            key: r.routeKey,
            tenant: r.tenantId,
            endpoint: r.endpoint,
            gateway: r.gatewayId,
          })),
          ['platform', 'key', 'tenant', 'endpoint', 'gateway'],
        );
      }),
    );

  const deliveries = withDb(connector.command('deliveries'))
    .description('the outbox (or, with --dead, the dead letters)')
    .option('--dead', 'show dead letters')
    .option('--limit <n>', 'rows (1-10000)', '50')
    .action((options: DbOption & { dead?: boolean; limit: string }) =>
      useStore(options, async (store) => {
        const limit = parseLimit(options.limit);
        const flagged = (await store.listAudit(1_000)).filter((event) => event.event === 'forgery_accepted');
        if (!options.json) {
          for (const event of flagged.slice(0, 5)) {
            process.stderr.write(
              `⚠ ${String(event.detail?.endpoint)} accepted a delivery signed with a wrong key (${isoTime(event.at)}): its receiver does not verify signatures\n`,
            );
          }
        }
        if (options.dead) {
          const dead = await deadLetterViews(store, limit);
          const rows = dead.map((d) => ({
            id: d.id,
            tenant: d.tenantId,
            kind: d.kind,
            attempts: d.attempts,
            reason: d.reason,
            dead: isoTime(d.deadAt),
          }));
          if (options.json) return printJson(dead);
          return printTable(rows, ['id', 'tenant', 'kind', 'attempts', 'reason', 'dead']);
        }
        const queued = await deliveryViews(store, limit);
        if (options.json) return printJson(queued);
        printTable(
          queued.map((d) => ({
            id: d.id,
            tenant: d.tenantId,
            kind: d.kind,
            attempts: d.attempts,
            next: isoTime(d.nextAttemptAt),
            lastError: d.lastError,
          })),
          ['id', 'tenant', 'kind', 'attempts', 'next', 'lastError'],
        );
      }),
    );
  withDb(connector.command('prune'))
    .description(
      'remove old dead letters, audit events, chats, web-chat history and expired platform state now (RELAY_RETENTION_*_DAYS)',
    )
    .option('--dry-run', 'count what would go, delete nothing')
    .addHelpText('after', '\nExample:\n  hermes connector prune --dry-run --db ./relay-data/connector.db\n')
    .action((options: DbOption & { dryRun?: boolean }) => {
      let settings: ReturnType<typeof retentionFromEnv>;
      try {
        settings = retentionFromEnv(process.env);
      } catch (error) {
        if (error instanceof ConnectorConfigError) throw new CliError(error.message, 2);
        throw error;
      }
      return useStore(options, async (store) => {
        const now = Date.now();
        const dryRun = options.dryRun === true;
        const counts: PruneCounts = dryRun
          ? await countPrunable(store, settings, now)
          : await pruneOnce(store, settings, now);
        const cutoffs = pruneCutoffs(settings, now);
        if (options.json)
          return printJson({
            dryRun,
            [dryRun ? 'wouldPrune' : 'pruned']: counts,
            cutoffs: Object.fromEntries(
              Object.keys(counts).map((kind) => {
                const before = cutoffs[kind as keyof PruneCounts];
                return [kind, before === undefined ? null : isoTime(before)];
              }),
            ),
          });
        const labels: Record<keyof PruneCounts, string> = {
          deadLetters: 'dead letters',
          audit: 'audit events',
          chats: 'chats',
          platformState: 'platform state (expired)',
          webchatMessages: 'web-chat messages',
        };
        process.stdout.write(dryRun ? 'dry run: nothing deleted\n' : '');
        printTable(
          (Object.keys(counts) as (keyof PruneCounts)[]).map((kind) => {
            const before = cutoffs[kind];
            return {
              kind: labels[kind],
              [dryRun ? 'would go' : 'removed']: counts[kind],
              'older than': before === undefined ? '(kept for ever)' : isoTime(before),
            };
          }),
          ['kind', dryRun ? 'would go' : 'removed', 'older than'],
        );
      });
    });
  withDb(deliveries.command('retry <id>'))
    .description('move a dead letter back into the outbox')
    // `deliveries` has --db/--json of its own, which commander gives the parent wherever they
    // are written: read them through the whole chain.
    .action((id: string, _options: DbOption, command: Command) => {
      const options = command.optsWithGlobals<DbOption>();
      return useStore(options, async (store) => {
        await retryDeadLetter(store, id, Date.now(), CLI);
        if (options.json) return printJson({ id, requeued: true });
        process.stdout.write(`dead letter ${id} re-queued\n`);
      });
    });
  withDb(deliveries.command('discard <id>'))
    .description('delete a dead letter for good (it is never delivered)')
    .option('--yes', 'do not ask (required when input is not a terminal)')
    .action((id: string, _options: DbOption, command: Command) => {
      const options = command.optsWithGlobals<DbOption & { yes?: boolean }>();
      return useStore(options, async (store) => {
        await confirmIrreversible(`discarding dead letter ${id}`, options);
        await discardDeadLetter(store, id, Date.now(), CLI);
        if (options.json) return printJson({ id, discarded: true });
        process.stdout.write(`dead letter ${id} discarded\n`);
      });
    });

  withDb(connector.command('audit'))
    .description('the audit log, newest first: who created, rotated, revoked, retried or discarded what')
    .option('--limit <n>', 'events (1-10000)', '50')
    .option('--tenant <tenant>', 'only this tenant (id or name)')
    .action((options: DbOption & { limit: string; tenant?: string }) =>
      useStore(options, async (store) => {
        const events = await auditViews(store, { limit: parseLimit(options.limit), tenant: options.tenant });
        if (options.json) return printJson(events);
        printTable(
          events.map((e) => ({
            at: e.at,
            event: e.event,
            tenant: e.tenantId ?? '-',
            gateway: e.gatewayId ?? '-',
            actor: typeof e.detail?.actor === 'string' ? e.detail.actor : '-',
            detail: describeDetail(e.detail),
          })),
          ['at', 'event', 'tenant', 'gateway', 'actor', 'detail'],
        );
      }),
    );
}

/** An audit detail on one table cell: `key=value` pairs, the actor shown in its own column. */
function describeDetail(detail: Record<string, unknown> | null): string {
  if (!detail) return '';
  return Object.entries(detail)
    .filter(([key]) => key !== 'actor')
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
}
