import type { Logger } from 'pino';
import { isUsableSecret, mintUpgradeToken } from '../auth/index.js';
import { errorMessage } from '../common/errors.js';
import type { RelayPolicyDeclaration } from '../home/config.js';
import { policyUrl } from '../protocol/index.js';

/**
 * The policy declaration at boot (current §11.1): one `POST {connector}/relay/policy` per fronted
 * platform with something to declare, authenticated with a freshly minted upgrade token, each a
 * full replace. Fail-soft: only a 200 counts, anything else is one warning, and the boot goes on.
 * Returns how many were accepted.
 */
export async function declarePolicies(options: {
  relayUrl: string | undefined;
  gatewayId: string | undefined;
  secret: string | undefined;
  policies: readonly RelayPolicyDeclaration[];
  log: Logger;
  fetchImpl?: typeof fetch;
  timeoutMs?: number;
}): Promise<number> {
  const { relayUrl, gatewayId, secret, log } = options;
  if (!relayUrl || !gatewayId || !isUsableSecret(secret) || options.policies.length === 0) return 0;
  const url = policyUrl(relayUrl);
  let accepted = 0;
  for (const policy of options.policies) {
    try {
      const response = await (options.fetchImpl ?? fetch)(url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${mintUpgradeToken(gatewayId, secret)}`,
          'content-type': 'application/json',
          accept: 'application/json',
        },
        body: JSON.stringify(policy),
        signal: AbortSignal.timeout(options.timeoutMs ?? 15_000),
      });
      if (response.status === 200) {
        accepted++;
        log.info(
          { platform: policy.platform, requireAddress: policy.requireAddress },
          'relay policy declared',
        );
      } else log.warn({ platform: policy.platform, status: response.status }, 'relay policy not accepted');
      await response.body?.cancel().catch(() => undefined);
    } catch (error) {
      log.warn({ platform: policy.platform, err: errorMessage(error) }, 'relay policy not declared');
    }
  }
  return accepted;
}
