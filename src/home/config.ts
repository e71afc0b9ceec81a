import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Document, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { isUsableSecret } from '../auth/hmac.js';
import { redactUrl } from '../common/redact.js';
import { parseRouteKeys } from '../protocol/enroll.js';
import { isJsonObject, readJsonFile } from './atomic-file.js';

/**
 * Gateway configuration (spec §3, reference relay §5.4 and lifecycle §1.6): the environment wins
 * over `$HERMES_HOME/config.yaml` (`gateway.*`, `agent.*`), which wins over defaults. A blank env
 * value counts as unset (falls through to config.yaml), and a secret that is only whitespace counts
 * as unset (`isUsableSecret`). `$HERMES_HOME/.env` is not read here: load it into the env first
 * (`loadEnvFile`, env wins).
 */

export const CONFIG_FILE_NAME = 'config.yaml';
export const AUTH_FILE_NAME = 'auth.json';
const MANAGED_MARKER_NAME = '.managed';
/**
 * Loopback unless said otherwise (the June reference binds 0.0.0.0): a connector on another
 * machine needs `GATEWAY_RELAY_INBOUND_HOST=0.0.0.0` (or an address), an explicit choice.
 */
const DEFAULT_INBOUND_HOST = '127.0.0.1';
const DEFAULT_RELAY_PLATFORM = 'relay';
export const DEFAULT_MODEL = 'gpt-4o-mini';
export const DEFAULT_OPENAI_BASE_URL = 'https://api.openai.com/v1';
/** `agent.restart_drain_timeout` default (June 2026 reference value). */
export const DEFAULT_RESTART_DRAIN_TIMEOUT_SECONDS = 180;

export const AGENT_KINDS = ['echo', 'openai', 'command'] as const;
export type AgentKind = (typeof AGENT_KINDS)[number];

export interface GatewayConfig {
  /** The resolved `HERMES_HOME` (or profile home). */
  home: string;
  /**
   * `GATEWAY_RELAY_URL` / `gateway.relay_url`, trailing `/` stripped. Presence activates the relay,
   * unless `relayDisabledBy` names a veto (then undefined).
   */
  relayUrl: string | undefined;
  /**
   * The config.yaml key that turned the relay off (`platforms.relay.enabled: false`, top level or
   * under `gateway`; current §10.2): it vetoes even an env URL. Undefined when nothing did.
   */
  relayDisabledBy: string | undefined;
  /** `GATEWAY_RELAY_ID` / `gateway.relay_id`. */
  relayId: string | undefined;
  /** `GATEWAY_RELAY_SECRET` / `gateway.relay_secret` (secret). */
  relaySecret: string | undefined;
  /** `GATEWAY_RELAY_DELIVERY_KEY` / `gateway.relay_delivery_key` (secret). */
  deliveryKey: string | undefined;
  /** `GATEWAY_RELAY_INBOUND_HOST` / `gateway.relay_inbound_host`, default `127.0.0.1`. */
  inboundHost: string;
  /** `GATEWAY_RELAY_INBOUND_PORT` / `gateway.relay_inbound_port`; undefined = receiver disabled. */
  inboundPort: number | undefined;
  /** `GATEWAY_RELAY_ENDPOINT` / `gateway.relay_endpoint`, trailing `/` stripped; '' = outbound-only. */
  endpoint: string;
  /** `GATEWAY_RELAY_ROUTE_KEYS` / `gateway.relay_route_keys`. */
  routeKeys: string[];
  /** `GATEWAY_RELAY_ENROLL_TOKEN` (secret). */
  enrollToken: string | undefined;
  /** The first identity's platform (see `identities`). */
  platform: string;
  /** The first identity's bot id. */
  botId: string;
  /**
   * The platform identities this gateway fronts, one `hello` each, first = default (current §4.3):
   * `GATEWAY_RELAY_PLATFORMS` + `GATEWAY_RELAY_BOT_IDS`; without them the June scalars
   * `GATEWAY_RELAY_PLATFORM` / `GATEWAY_RELAY_BOT_ID`; else `relay` with no bot id.
   */
  identities: RelayIdentity[];
  /** `GATEWAY_RELAY_INSTANCE_ID` / `gateway.relay_instance_id`: provision `instanceId` (current §10.2). */
  instanceId: string | undefined;
  /** `GATEWAY_RELAY_WAKE_URL` / `gateway.relay_wake_url`, trailing `/` stripped: provision `wakeUrl`. */
  wakeUrl: string | undefined;
  /** `GATEWAY_RELAY_DISPLAY_NAME`, trimmed and capped at 64; the stock "Hermes Agent" is not sent. */
  displayName: string | undefined;
  /**
   * What each fronted platform declares relevant (`POST /relay/policy`, current §11.1); a platform
   * with nothing to declare is absent.
   */
  policies: RelayPolicyDeclaration[];
  /** `gateway.group_sessions_per_user`, default true. */
  groupSessionsPerUser: boolean;
  /** `gateway.thread_sessions_per_user`, default false. */
  threadSessionsPerUser: boolean;
  /** `HERMES_MANAGED` truthy or a `.managed` file in the home. */
  managed: boolean;
  /** `HERMES_PORTAL_TOKEN`, else `auth.json` `access_token` (secret). */
  portalToken: string | undefined;
  /**
   * The identity provider for enroll and provision bearers (current §10.3):
   * `GATEWAY_RELAY_IDP_TOKEN_URL` / `_CLIENT_ID` / `_CLIENT_SECRET` / `_SCOPE`, else `gateway.idp.*`
   * when the env has no token URL (env id and secret still win per key). Unset: the portal token.
   */
  idp: IdpConfig | undefined;
  /** `HERMES_AGENT`: echo (default) | openai | command. */
  agent: AgentKind;
  /** `OPENAI_BASE_URL`, default `https://api.openai.com/v1`, trailing `/` stripped. */
  openaiBaseUrl: string;
  /** `OPENAI_API_KEY` (secret). */
  openaiApiKey: string | undefined;
  /** `HERMES_MODEL` / `agent.model`, default `gpt-4o-mini`. */
  model: string;
  /** `HERMES_AGENT_COMMAND` (required when agent is `command`). */
  agentCommand: string | undefined;
  /** `HERMES_RESTART_DRAIN_TIMEOUT` / `agent.restart_drain_timeout`, seconds, default 180. */
  restartDrainTimeoutSeconds: number;
  /** `HERMES_DASHBOARD_DRAIN_SECRET` (secret). */
  dashboardDrainSecret: string | undefined;
  /** Path of the config.yaml consulted (it may not exist). */
  configPath: string;
  /** Non-fatal problems worth one log line each (never contain secret values). */
  warnings: string[];
}

/** A configuration problem meant for one line on stderr (no stack trace). */
export class GatewayConfigError extends Error {
  constructor(
    message: string,
    readonly file?: string,
    readonly line?: number,
  ) {
    super(message);
    this.name = 'GatewayConfigError';
  }
}

export interface LoadGatewayConfigOptions {
  home: string;
  env: NodeJS.ProcessEnv;
}

// ---------------------------------------------------------------------------------------------
// config.yaml

interface YamlSource {
  path: string;
  doc: Document | undefined;
  lines: LineCounter;
}

function loadYaml(path: string): YamlSource {
  const lines = new LineCounter();
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { path, doc: undefined, lines };
    throw new GatewayConfigError(`Cannot read ${path}: ${code ?? String(error)}`, path);
  }
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const error = doc.errors[0];
  if (error) {
    const { line, col } = lines.linePos(error.pos[0]);
    const reason = error.message.split('\n')[0] ?? 'invalid YAML';
    throw new GatewayConfigError(
      `Invalid YAML in ${path} at line ${line}, column ${col}: ${reason}`,
      path,
      line,
    );
  }
  const root = doc.contents;
  if (root !== null && !isMap(root) && !(isScalar(root) && root.value === null)) {
    throw configError({ path, doc, lines }, root, 'the top level must be a mapping');
  }
  return { path, doc, lines };
}

function lineOf(source: YamlSource, node: Node | null | undefined): number | undefined {
  const start = node?.range?.[0];
  return start === undefined ? undefined : source.lines.linePos(start).line;
}

function configError(source: YamlSource, node: Node | null | undefined, message: string): GatewayConfigError {
  const line = lineOf(source, node);
  return new GatewayConfigError(
    `${source.path}${line === undefined ? '' : ` line ${line}`}: ${message}`,
    source.path,
    line,
  );
}

/** The node at `section.key`, or undefined; throws when `section` exists but is not a mapping. */
function yamlNode(source: YamlSource, section: string, key: string): Node | undefined {
  const doc = source.doc;
  if (!doc || !isMap(doc.contents)) return undefined;
  const parent = doc.contents.get(section, true) as Node | undefined;
  if (parent === undefined || (isScalar(parent) && parent.value === null)) return undefined;
  if (!isMap(parent)) throw configError(source, parent, `'${section}' must be a mapping`);
  const node = parent.get(key, true) as Node | undefined;
  if (node === undefined || (isScalar(node) && node.value === null)) return undefined;
  return node;
}

/** A scalar setting as a string (numbers and booleans as written in YAML), or undefined. */
function yamlString(source: YamlSource, section: string, key: string): string | undefined {
  const node = yamlNode(source, section, key);
  if (node === undefined) return undefined;
  if (!isScalar(node)) throw configError(source, node, `'${section}.${key}' must be a single value`);
  const value = node.value;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return String(value);
  }
  throw configError(source, node, `'${section}.${key}' must be a single value`);
}

/**
 * `platforms.relay.enabled: false` at the top level or under `gateway` (a YAML boolean or the
 * string "false"): the path that says so, or undefined. Any other value leaves the relay on.
 */
function relayVeto(source: YamlSource): string | undefined {
  const doc = source.doc;
  if (!doc || !isMap(doc.contents)) return undefined;
  for (const path of [
    ['platforms', 'relay', 'enabled'],
    ['gateway', 'platforms', 'relay', 'enabled'],
  ]) {
    let value: unknown;
    try {
      value = doc.getIn(path);
    } catch {
      continue; // a scalar where a mapping was expected: not a veto
    }
    if (
      value === false ||
      (typeof value === 'string' && parseBoolean(value) === false && value.trim() !== '')
    )
      return path.join('.');
  }
  return undefined;
}

function yamlBoolean(source: YamlSource, section: string, key: string): boolean | undefined {
  const node = yamlNode(source, section, key);
  if (node === undefined) return undefined;
  const value = isScalar(node) ? node.value : undefined;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' || typeof value === 'number') {
    const parsed = parseBoolean(String(value));
    if (parsed !== undefined) return parsed;
  }
  throw configError(source, node, `'${section}.${key}' must be true or false`);
}

function yamlRouteKeys(source: YamlSource): string[] | undefined {
  const node = yamlNode(source, 'gateway', 'relay_route_keys');
  if (node === undefined) return undefined;
  if (isSeq(node)) {
    return parseRouteKeys(
      node.items.map((item) => {
        if (!isScalar(item) || typeof item.value === 'object') {
          throw configError(source, item as Node, "'gateway.relay_route_keys' items must be single values");
        }
        return String(item.value);
      }),
    );
  }
  return parseRouteKeys(yamlString(source, 'gateway', 'relay_route_keys'));
}

// ---------------------------------------------------------------------------------------------
// Value parsing

function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function nonBlank(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

function envSecret(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  return isUsableSecret(value) ? value : undefined;
}

function parseBoolean(value: string): boolean | undefined {
  const normalized = value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(normalized)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(normalized)) return false;
  return undefined;
}

function stripTrailingSlashes(value: string): string {
  return value.replace(/\/+$/, '');
}

/** Inbound port: unset, `0` or not an integer in 1–65535 ⇒ receiver disabled (undefined). */
function parseInboundPort(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (!/^\d+$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** Drain timeout in seconds: blank or invalid (not a finite number ≥ 0) ⇒ undefined (use the default). */
export function parseDrainTimeout(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const seconds = Number(value.trim());
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}

/** `HERMES_MANAGED` truthiness: '1', 'true', 'yes' (any case). */
function isTruthyFlag(value: string | undefined): boolean {
  return value !== undefined && /^(1|true|yes)$/i.test(value.trim());
}

function readPortalToken(home: string, warnings: string[]): string | undefined {
  const read = readJsonFile(join(home, AUTH_FILE_NAME));
  if (read.kind === 'absent') return undefined;
  if (read.kind === 'ok' && isJsonObject(read.value)) {
    const token = read.value.access_token;
    return isUsableSecret(token) ? token : undefined;
  }
  warnings.push(`${join(home, AUTH_FILE_NAME)} is not a JSON object; ignoring it`);
  return undefined;
}

// ---------------------------------------------------------------------------------------------

/** Resolve the gateway configuration. Throws `GatewayConfigError` for a malformed config.yaml or bad values. */
export function loadGatewayConfig(options: LoadGatewayConfigOptions): GatewayConfig {
  const { home, env } = options;
  const configPath = join(home, CONFIG_FILE_NAME);
  const source = loadYaml(configPath);
  const warnings: string[] = [];

  const gatewayString = (envName: string, key: string) =>
    envValue(env, envName) ?? nonBlank(yamlString(source, 'gateway', key));
  const gatewaySecret = (envName: string, key: string) => {
    const fromEnv = envSecret(env, envName);
    if (fromEnv !== undefined) return fromEnv;
    const fromConfig = yamlString(source, 'gateway', key);
    return isUsableSecret(fromConfig) ? fromConfig : undefined;
  };

  const relayDisabledBy = relayVeto(source);
  const relayUrlRaw = relayDisabledBy ? undefined : gatewayString('GATEWAY_RELAY_URL', 'relay_url');
  const relayUrl = relayUrlRaw === undefined ? undefined : stripTrailingSlashes(relayUrlRaw) || undefined;

  const portRaw = gatewayString('GATEWAY_RELAY_INBOUND_PORT', 'relay_inbound_port');
  const inboundPort = parseInboundPort(portRaw);
  if (portRaw !== undefined && inboundPort === undefined && portRaw !== '0') {
    warnings.push(
      `Inbound port ${JSON.stringify(portRaw)} is not a port number (1-65535); inbound receiver disabled`,
    );
  }

  const envRouteKeys = env.GATEWAY_RELAY_ROUTE_KEYS;
  const routeKeys =
    envRouteKeys !== undefined && envRouteKeys.trim() !== ''
      ? parseRouteKeys(envRouteKeys)
      : (yamlRouteKeys(source) ?? []);

  const agentRaw = envValue(env, 'HERMES_AGENT')?.toLowerCase() ?? 'echo';
  if (!(AGENT_KINDS as readonly string[]).includes(agentRaw)) {
    throw new GatewayConfigError(
      `HERMES_AGENT must be one of ${AGENT_KINDS.join(', ')} (got ${JSON.stringify(agentRaw)})`,
    );
  }
  const agent = agentRaw as AgentKind;
  const agentCommand = envValue(env, 'HERMES_AGENT_COMMAND');
  if (agent === 'command' && agentCommand === undefined) {
    throw new GatewayConfigError(
      'HERMES_AGENT=command needs HERMES_AGENT_COMMAND (the program to run per turn)',
    );
  }

  let restartDrainTimeoutSeconds = DEFAULT_RESTART_DRAIN_TIMEOUT_SECONDS;
  const drainEnv = envValue(env, 'HERMES_RESTART_DRAIN_TIMEOUT');
  const drainRaw = drainEnv ?? nonBlank(yamlString(source, 'agent', 'restart_drain_timeout'));
  if (drainRaw !== undefined) {
    const parsed = parseDrainTimeout(drainRaw);
    if (parsed === undefined) {
      warnings.push(
        `${drainEnv !== undefined ? 'HERMES_RESTART_DRAIN_TIMEOUT' : 'agent.restart_drain_timeout'} ${JSON.stringify(drainRaw)} is not a number of seconds; using ${DEFAULT_RESTART_DRAIN_TIMEOUT_SECONDS}`,
      );
    } else restartDrainTimeoutSeconds = parsed;
  }

  const identities = parseRelayIdentities(env, warnings);
  return {
    home,
    relayUrl,
    relayDisabledBy,
    relayId: gatewayString('GATEWAY_RELAY_ID', 'relay_id'),
    relaySecret: gatewaySecret('GATEWAY_RELAY_SECRET', 'relay_secret'),
    deliveryKey: gatewaySecret('GATEWAY_RELAY_DELIVERY_KEY', 'relay_delivery_key'),
    inboundHost: gatewayString('GATEWAY_RELAY_INBOUND_HOST', 'relay_inbound_host') ?? DEFAULT_INBOUND_HOST,
    inboundPort,
    endpoint: stripTrailingSlashes(gatewayString('GATEWAY_RELAY_ENDPOINT', 'relay_endpoint') ?? ''),
    routeKeys,
    enrollToken: envSecret(env, 'GATEWAY_RELAY_ENROLL_TOKEN')?.trim(),
    platform: identities[0]?.platform ?? DEFAULT_RELAY_PLATFORM,
    botId: identities[0]?.botId ?? '',
    identities,
    instanceId: gatewayString('GATEWAY_RELAY_INSTANCE_ID', 'relay_instance_id')?.trim() || undefined,
    wakeUrl:
      stripTrailingSlashes(gatewayString('GATEWAY_RELAY_WAKE_URL', 'relay_wake_url')?.trim() ?? '') ||
      undefined,
    displayName: displayNameFrom(env.GATEWAY_RELAY_DISPLAY_NAME),
    policies: identities.flatMap((identity) => {
      const declared = policyFor(source, env, identity.platform);
      return declared ? [declared] : [];
    }),
    groupSessionsPerUser: yamlBoolean(source, 'gateway', 'group_sessions_per_user') ?? true,
    threadSessionsPerUser: yamlBoolean(source, 'gateway', 'thread_sessions_per_user') ?? false,
    managed: isTruthyFlag(env.HERMES_MANAGED) || existsSync(join(home, MANAGED_MARKER_NAME)),
    portalToken: envSecret(env, 'HERMES_PORTAL_TOKEN')?.trim() ?? readPortalToken(home, warnings),
    idp: idpFrom(env, source),
    agent,
    openaiBaseUrl: stripTrailingSlashes(envValue(env, 'OPENAI_BASE_URL') ?? DEFAULT_OPENAI_BASE_URL),
    openaiApiKey: envSecret(env, 'OPENAI_API_KEY')?.trim(),
    model: envValue(env, 'HERMES_MODEL') ?? nonBlank(yamlString(source, 'agent', 'model')) ?? DEFAULT_MODEL,
    agentCommand,
    restartDrainTimeoutSeconds,
    dashboardDrainSecret: envSecret(env, 'HERMES_DASHBOARD_DRAIN_SECRET'),
    configPath,
    warnings,
  };
}

const SECRET_KEYS = [
  'relaySecret',
  'deliveryKey',
  'enrollToken',
  'portalToken',
  'openaiApiKey',
  'dashboardDrainSecret',
] as const satisfies readonly (keyof GatewayConfig)[];

export type RedactedGatewayConfig = Omit<GatewayConfig, (typeof SECRET_KEYS)[number]> &
  Record<(typeof SECRET_KEYS)[number], '(set)' | '(unset)'>;

/** For display: secrets become '(set)' / '(unset)'; credentials inside URLs become '***'. */
export function redactConfig(config: GatewayConfig): RedactedGatewayConfig {
  const redacted = { ...config, routeKeys: [...config.routeKeys], warnings: [...config.warnings] } as Record<
    string,
    unknown
  >;
  for (const key of SECRET_KEYS) redacted[key] = config[key] === undefined ? '(unset)' : '(set)';
  redacted.relayUrl = config.relayUrl === undefined ? undefined : redactUrl(config.relayUrl);
  redacted.openaiBaseUrl = redactUrl(config.openaiBaseUrl);
  redacted.endpoint = redactUrl(config.endpoint);
  if (config.idp)
    redacted.idp = {
      ...config.idp,
      tokenUrl: redactUrl(config.idp.tokenUrl),
      clientSecret: config.idp.clientSecret === undefined ? '(unset)' : '(set)',
    };
  return redacted as RedactedGatewayConfig;
}

/** One platform identity a gateway fronts. `username` is only for deep links. */
export interface RelayIdentity {
  platform: string;
  botId: string;
  username?: string | undefined;
}

/**
 * The identity set (current §4.3): `GATEWAY_RELAY_PLATFORMS` is a comma-separated list (trimmed,
 * empties dropped, order kept); `GATEWAY_RELAY_BOT_IDS` a JSON object of platform →
 * `{"botId", "username"?}` (a platform it does not name gets bot id ""; malformed JSON counts as
 * `{}`, with a warning). Without the list, the June scalars `GATEWAY_RELAY_PLATFORM` and
 * `GATEWAY_RELAY_BOT_ID` still work, so existing setups keep theirs; with nothing, `relay`.
 */
export function parseRelayIdentities(env: NodeJS.ProcessEnv, warnings: string[] = []): RelayIdentity[] {
  const platforms = (env.GATEWAY_RELAY_PLATFORMS ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (platforms.length === 0) {
    return [
      {
        platform: env.GATEWAY_RELAY_PLATFORM?.trim() || DEFAULT_RELAY_PLATFORM,
        botId: env.GATEWAY_RELAY_BOT_ID?.trim() ?? '',
      },
    ];
  }
  let map: Record<string, unknown> = {};
  const raw = env.GATEWAY_RELAY_BOT_IDS?.trim();
  if (raw) {
    try {
      const parsed: unknown = JSON.parse(raw);
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed))
        map = parsed as Record<string, unknown>;
      else throw new Error('not an object');
    } catch {
      warnings.push('GATEWAY_RELAY_BOT_IDS is not valid JSON; treating as empty');
    }
  }
  const seen = new Set<string>();
  const identities: RelayIdentity[] = [];
  for (const platform of platforms) {
    if (seen.has(platform)) continue;
    seen.add(platform);
    const entry = map[platform] as { botId?: unknown; username?: unknown } | undefined;
    identities.push({
      platform,
      botId: typeof entry?.botId === 'string' ? entry.botId : '',
      username: typeof entry?.username === 'string' ? entry.username : undefined,
    });
  }
  return identities;
}

/** The reference gateway's display-name rule (current §10.2): trimmed, capped at 64, stock name suppressed. */
function displayNameFrom(value: string | undefined): string | undefined {
  const name = value?.trim().slice(0, 64).trim();
  return name && name !== 'Hermes Agent' ? name : undefined;
}

/** One `POST /relay/policy` body. */
export interface RelayPolicyDeclaration {
  platform: string;
  requireAddress: boolean;
  freeResponseScopes: string[];
  allowOtherBots: boolean;
}

/** A value at a path of config.yaml, or undefined (no file, no key, or not a mapping on the way). */
function yamlAt(source: YamlSource, path: readonly string[]): unknown {
  const doc = source.doc;
  if (!doc) return undefined;
  const node = doc.getIn(path, false) as unknown;
  if (isSeq(node) || isMap(node)) return node.toJSON();
  return node === null ? undefined : node;
}

/**
 * The reference projection (current §11.1): `require_mention` and `free_response_channels` from the
 * platform's block (`<platform>:`, then `gateway.platforms.<platform>`, then `platforms.<platform>`),
 * else the top level; `allowOtherBots` from `<PLATFORM>_ALLOW_BOTS` being `mentions` or `all`.
 * Nothing to declare (require_mention unset, no scopes, bots not allowed) or the generic `relay`
 * platform: undefined. An explicit `require_mention: false` is declared.
 */
function policyFor(
  source: YamlSource,
  env: NodeJS.ProcessEnv,
  platform: string,
): RelayPolicyDeclaration | undefined {
  if (platform === 'relay') return undefined;
  const blocks = [[platform], ['gateway', 'platforms', platform], ['platforms', platform], []];
  const lookup = (key: string): unknown => {
    for (const block of blocks) {
      const value = yamlAt(source, [...block, key]);
      if (value !== undefined) return value;
    }
    return undefined;
  };
  const mention = lookup('require_mention');
  const requireMention =
    typeof mention === 'boolean' ? mention : typeof mention === 'string' ? parseBoolean(mention) : undefined;
  const channels = lookup('free_response_channels');
  const scopes = (
    Array.isArray(channels) ? channels.map(String) : typeof channels === 'string' ? channels.split(',') : []
  )
    .map((scope) => scope.trim())
    .filter((scope) => scope !== '');
  const bots = env[`${platform.toUpperCase()}_ALLOW_BOTS`]?.trim().toLowerCase();
  const allowOtherBots = bots === 'mentions' || bots === 'all';
  if (requireMention === undefined && scopes.length === 0 && !allowOtherBots) return undefined;
  return { platform, requireAddress: requireMention ?? false, freeResponseScopes: scopes, allowOtherBots };
}

export interface IdpConfig {
  tokenUrl: string;
  clientId: string | undefined;
  clientSecret: string | undefined;
  scope: string | undefined;
}

function idpFrom(env: NodeJS.ProcessEnv, source: YamlSource): IdpConfig | undefined {
  const fromEnv = (key: string) => env[`GATEWAY_RELAY_IDP_${key}`]?.trim() || undefined;
  const fromYaml = (key: string): string | undefined => {
    const value = yamlAt(source, ['gateway', 'idp', key]);
    return typeof value === 'string' || typeof value === 'number'
      ? String(value).trim() || undefined
      : undefined;
  };
  const envUrl = fromEnv('TOKEN_URL');
  const tokenUrl = envUrl ?? fromYaml('token_url');
  if (!tokenUrl) return undefined;
  const fallback = envUrl ? () => undefined : fromYaml;
  return {
    tokenUrl,
    clientId: fromEnv('CLIENT_ID') ?? fallback('client_id'),
    clientSecret: fromEnv('CLIENT_SECRET') ?? fallback('client_secret'),
    scope: fromEnv('SCOPE') ?? fallback('scope'),
  };
}
