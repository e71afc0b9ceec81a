import type { Logger } from 'pino';
import { isUsableSecret, redact } from '../auth/index.js';
import { errorMessage } from '../common/errors.js';
import { ProvisionResponseSchema, provisionUrl } from '../protocol/index.js';
import { defaultGatewayId, postConnectorJson, readCredentials } from './enroll.js';

/**
 * Boot-time self-provision (current §10.2): with a relay URL, an identity token and no pinned
 * id+secret (a managed home is no longer required), the gateway asks
 * `POST {connector}/relay/provision` once per platform identity, in order, under one gateway id.
 * The first response carrying a secret gives the credentials; `secretIssued: false` (a further
 * platform of the same boot) is an answer, not an error. Fail-soft: every failure is one warning
 * and the boot goes on; it never throws and never logs a credential. The caller keeps the
 * credentials in memory only.
 */

export interface ProvisionConfig {
  relayUrl?: string | undefined;
  gatewayId?: string | undefined;
  secret?: string | undefined;
  /** Unused since the current generation (kept so June-era callers still compile). */
  managed?: boolean;
  portalToken?: string | undefined;
  platform: string;
  botId: string;
  /** One provision per identity, in order; default: just `platform`/`botId`. */
  identities?: readonly { platform: string; botId: string }[];
  instanceId?: string | undefined;
  wakeUrl?: string | undefined;
  displayName?: string | undefined;
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

export type ProvisionSkip = 'no relay URL' | 'pinned credentials' | 'no portal token';

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
    const identities =
      config.identities && config.identities.length > 0
        ? config.identities
        : [{ platform: config.platform || 'relay', botId: config.botId ?? '' }];
    let issued: Extract<ProvisionOutcome, { provisioned: true }> | undefined;
    const failures: string[] = [];
    for (const identity of identities) {
      const reply = await postConnectorJson({
        url,
        bearer: portalToken,
        body: {
          gatewayId,
          platform: identity.platform || 'relay',
          botId: identity.botId ?? '',
          gatewayEndpoint: (config.endpoint ?? '').trim().replace(/\/+$/, ''),
          routeKeys: [...config.routeKeys],
          // Sent only when set, never as "" (current §10.2).
          ...(config.instanceId ? { instanceId: config.instanceId } : {}),
          ...(config.wakeUrl ? { wakeUrl: config.wakeUrl } : {}),
          ...(config.displayName ? { displayName: config.displayName } : {}),
        },
        fetchImpl: options.fetchImpl,
        timeoutMs: options.timeoutMs,
      });
      if (reply.kind === 'unreachable') {
        failures.push(`could not reach the connector at ${url}: ${reply.reason}`);
        continue;
      }
      if (reply.status < 200 || reply.status > 299) {
        failures.push(`connector returned HTTP ${reply.status}${reply.error ? `: ${reply.error}` : ''}`);
        continue;
      }
      if ((reply.body as { secretIssued?: unknown } | null)?.secretIssued === false) {
        log.info(
          { platform: identity.platform },
          'relay self-provision: platform added (credentials withheld)',
        );
        continue;
      }
      const credentials = readCredentials(reply.body, gatewayId);
      if (!credentials.ok) {
        failures.push(credentials.message);
        continue;
      }
      // Only the first response carrying a secret counts.
      if (issued) continue;
      const routes = ProvisionResponseSchema.shape.routeKeys.safeParse(
        (reply.body as { routeKeys?: unknown }).routeKeys,
      );
      issued = { provisioned: true, ...credentials.value, routeKeys: routes.success ? routes.data : [] };
    }
    for (const failure of failures) fail(log, secrets, failure);
    if (!issued) {
      const [first] = failures;
      if (first !== undefined) return { provisioned: false, reason: redact(first, secrets) };
      return fail(log, secrets, 'the connector withheld credentials for every platform');
    }
    log.info(
      {
        gatewayId: issued.gatewayId,
        tenant: issued.tenant,
        routeKeys: issued.routeKeys.length,
        platforms: identities.length,
      },
      'relay self-provision succeeded',
    );
    return issued;
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
