import type { Logger } from 'pino';
import { isUsableSecret, redact } from '../auth/index.js';
import { errorMessage } from '../common/errors.js';
import { ProvisionResponseSchema, provisionUrl } from '../protocol/index.js';
import { defaultGatewayId, postConnectorJson, readCredentials } from './enroll.js';

/**
 * Managed-boot self-provision (reference §5.2–§5.3): when the gateway is managed, has a relay URL,
 * an identity token and no pinned id+secret, it asks `POST {connector}/relay/provision` for
 * credentials. Fail-soft: every failure is one warning and `provisioned: false`; it never throws
 * and never logs a credential. The caller keeps the credentials in memory only.
 */

export interface ProvisionConfig {
  relayUrl?: string | undefined;
  gatewayId?: string | undefined;
  secret?: string | undefined;
  managed: boolean;
  portalToken?: string | undefined;
  platform: string;
  botId: string;
  /** Public inbound URL asserted to the connector; empty or absent means outbound-only. */
  endpoint?: string | undefined;
  routeKeys: readonly string[];
}

export interface SelfProvisionOptions {
  config: ProvisionConfig;
  fetchImpl?: typeof fetch;
  log: Logger;
  timeoutMs?: number;
  /** For `gw-<hostname>` when no gateway id is configured (default: the OS hostname). */
  hostname?: string;
}

export type ProvisionSkip = 'not managed' | 'no relay URL' | 'pinned credentials' | 'no portal token';

export type ProvisionOutcome =
  | {
      provisioned: true;
      gatewayId: string;
      secret: string;
      deliveryKey: string;
      tenant: string;
      routeKeys: string[];
    }
  | { provisioned: false; reason: string };

/** Whether §5.2's trigger holds; the reason when it does not. */
function provisionSkipReason(config: ProvisionConfig): ProvisionSkip | undefined {
  if (!config.managed) return 'not managed';
  if (!isUsableSecret(config.relayUrl)) return 'no relay URL';
  if (isUsableSecret(config.gatewayId) && isUsableSecret(config.secret)) return 'pinned credentials';
  if (!isUsableSecret(config.portalToken)) return 'no portal token';
  return undefined;
}

export async function selfProvision(options: SelfProvisionOptions): Promise<ProvisionOutcome> {
  const { config, log } = options;
  const secrets = [config.portalToken, config.secret];
  try {
    const skip = provisionSkipReason(config);
    if (skip) {
      if (skip === 'pinned credentials') log.info('relay self-provision skipped: pinned secret respected');
      else if (skip === 'no portal token') {
        log.warn('relay self-provision skipped: no identity token (log in or set HERMES_PORTAL_TOKEN)');
      } else log.debug({ reason: skip }, 'relay self-provision not applicable');
      return { provisioned: false, reason: skip };
    }
    const relayUrl = config.relayUrl as string;
    const portalToken = config.portalToken as string;
    const url = provisionUrl(relayUrl);
    const gatewayId = config.gatewayId?.trim() || defaultGatewayId(options.hostname);
    const reply = await postConnectorJson({
      url,
      bearer: portalToken,
      body: {
        gatewayId,
        platform: config.platform || 'relay',
        botId: config.botId ?? '',
        gatewayEndpoint: (config.endpoint ?? '').trim().replace(/\/+$/, ''),
        routeKeys: [...config.routeKeys],
      },
      fetchImpl: options.fetchImpl,
      timeoutMs: options.timeoutMs,
    });
    if (reply.kind === 'unreachable') {
      return fail(log, secrets, `could not reach the connector at ${url}: ${reply.reason}`);
    }
    if (reply.status < 200 || reply.status > 299) {
      const detail = reply.error ? `: ${reply.error}` : '';
      return fail(log, secrets, `connector returned HTTP ${reply.status}${detail}`, reply.status);
    }
    const credentials = readCredentials(reply.body, gatewayId);
    if (!credentials.ok) return fail(log, secrets, credentials.message, reply.status);
    const routes = ProvisionResponseSchema.shape.routeKeys.safeParse(
      (reply.body as { routeKeys?: unknown }).routeKeys,
    );
    const routeKeys = routes.success ? routes.data : [];
    const { value } = credentials;
    log.info(
      { gatewayId: value.gatewayId, tenant: value.tenant, routeKeys: routeKeys.length },
      'relay self-provision succeeded',
    );
    return { provisioned: true, ...value, routeKeys };
  } catch (error) {
    // Nothing above should throw; a bug must still not stop the boot.
    return fail(log, secrets, `self-provision failed: ${errorMessage(error)}`);
  }
}

function fail(
  log: Logger,
  secrets: readonly (string | undefined)[],
  message: string,
  status?: number,
): ProvisionOutcome {
  const reason = redact(message, secrets);
  log.warn(status === undefined ? {} : { status }, `relay self-provision failed: ${reason}`);
  return { provisioned: false, reason };
}
