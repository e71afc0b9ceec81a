/**
 * `hermes-relay/connector`: run the relay server inside your own process (docs/embedding.md).
 *
 * The public surface, and only it:
 * - start and stop a connector: `startConnector`, with its configuration from the `RELAY_*`
 *   variables and flags (`connectorConfigFromEnv`, `connectorDbFromEnv`, `ConnectorConfigError`);
 * - its store: `openStore` (a SQLite path or a `postgres://` URL), `SqliteStore`, `PostgresStore`,
 *   the `RelayStore` interface and its record types;
 * - what `hermes connector tenant|enroll-token|route|gateway|deliveries|audit …` do, the one
 *   service layer behind both the CLI's `--json` and the admin API (docs/admin-api.md): the
 *   actions (`createTenant`, `issueTenantToken`, `createEnrollmentToken`, `addRoute`,
 *   `revokeGateway`, the rotations, `retryDeadLetter`, `discardDeadLetter`; `AuditActor` names who
 *   did it in the audit log; `AdminError` and its `AdminNotFoundError`/`AdminConflictError` for bad
 *   input) and the JSON views (`listGatewaySummaries` with `storePresence`, `tenantViews`,
 *   `routeViews`, `deliveryViews`, `deadLetterViews`, `auditViews`, `outboxDepth`, `overview`,
 *   the `…View` helpers of the create/rotate answers, and their types). The admin console itself
 *   (`/admin`, `/admin/api/…`) is not exported: `startConnector` mounts it when `config.admin`
 *   holds a token (`RELAY_ADMIN_TOKEN`), wired to the running connector's sockets and engine;
 * - platforms: `buildAdapters` (the built-in ones for a configuration), `WebChatAdapter`,
 *   `TelegramAdapter`, `DiscordAdapter`, and the contract a new adapter implements
 *   (`PlatformAdapter`, `PlatformContext`, `PlatformInbound`, `IngestOutcome`, …);
 * - `createLogger` (the logger every part takes; any pino logger does) and `VERSION`.
 * Everything else under `src/connector` is internal and may change in any release.
 */

export type { Logger } from 'pino';
export { createLogger } from '../cli/logger.js';
export { VERSION } from '../cli/version.js';
export {
  AdminConflictError,
  AdminError,
  AdminNotFoundError,
  type AuditActor,
  type AuditView,
  addRoute,
  auditViews,
  createdTenantView,
  createEnrollmentToken,
  createTenant,
  type DeadLetterView,
  type DeliveryView,
  deadLetterViews,
  deliveryKeyView,
  deliveryViews,
  discardDeadLetter,
  enrollmentTokenView,
  type GatewayPresence,
  type GatewaySummary,
  issueTenantToken,
  listDeadLetters,
  listDeliveries,
  listGatewaySummaries,
  MAX_LIST_LIMIT,
  type OutboxDepthView,
  type OverviewView,
  outboxDepth,
  overview,
  retryDeadLetter,
  revokeGateway,
  rotateDeliveryKey,
  rotateGatewaySecret,
  routeViews,
  storePresence,
  tenantTokenView,
  tenantViews,
} from './admin.js';
export {
  type ConnectorConfig,
  ConnectorConfigError,
  type ConnectorFlags,
  connectorConfigFromEnv,
  connectorDbFromEnv,
  DEFAULT_WEBCHAT_RATE_LIMIT,
  type DiscordConfig,
} from './config.js';
export { type RunningConnector, type StartConnectorOptions, startConnector } from './connector.js';
export type { MediaMeta } from './media.js';
export { buildAdapters } from './platforms/build-adapters.js';
export { DiscordAdapter, type DiscordAdapterOptions } from './platforms/discord/adapter.js';
export { TelegramAdapter, type TelegramAdapterOptions } from './platforms/telegram.js';
export {
  type CommandDeclaration,
  INGEST_DEDUPE_TTL_MS,
  type InboundAttachment,
  type IngestOutcome,
  type PlatformAdapter,
  type PlatformContext,
  type PlatformInbound,
  type PlatformState,
} from './platforms/types.js';
export { WebChatAdapter, type WebChatAdapterOptions } from './platforms/webchat/adapter.js';
export { isPostgresUrl, openStore } from './store/open.js';
export { PostgresStore, type PostgresStoreOptions } from './store/postgres.js';
export { SqliteStore } from './store/sqlite.js';
export type {
  AuditEvent,
  DeadLetter,
  DeliveryKeys,
  DeliveryRecord,
  GatewayIdentity,
  GatewayRecord,
  RelayStore,
  RouteRecord,
  Tenant,
} from './store/types.js';
