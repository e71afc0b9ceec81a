import { isLoopbackHost } from '../common/loopback.js';
import { loadGatewayConfig } from '../home/config.js';
import {
  maskCredential,
  type ProviderContext,
  ProviderCredentialError,
  type ProviderUpstream,
  type ProxyProvider,
  redactUrl,
} from './provider.js';

/**
 * `openai`: any OpenAI-compatible upstream. Base URL `OPENAI_BASE_URL` (default
 * `https://api.openai.com/v1`), credential `OPENAI_API_KEY`, both resolved by `loadGatewayConfig`
 * (environment, after `$HERMES_HOME/.env`), so the proxy and the gateway's `openai` agent agree.
 */

export const openaiProvider: ProxyProvider = {
  name: 'openai',
  displayName: 'OpenAI',
  authHint: 'export OPENAI_API_KEY=<your key>',
  credentialEnv: 'OPENAI_API_KEY',
  allowedPaths: ['/chat/completions', '/completions', '/embeddings', '/models', '/responses'],
  load(context: ProviderContext): ProviderUpstream {
    const config = loadGatewayConfig({ home: context.home, env: context.env });
    const baseUrl = config.openaiBaseUrl;
    let parsed: URL;
    try {
      parsed = new URL(baseUrl);
    } catch {
      throw new Error(`OPENAI_BASE_URL ${JSON.stringify(redactUrl(baseUrl))} is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new Error(`OPENAI_BASE_URL must be an http:// or https:// URL (got ${parsed.protocol})`);
    }
    const warnings: string[] = [];
    if (parsed.protocol === 'http:' && !isLoopbackHost(parsed.hostname)) {
      warnings.push(`OPENAI_BASE_URL uses plain http to ${parsed.host}: the API key travels unencrypted`);
    }
    const key = config.openaiApiKey;
    return {
      baseUrl,
      configured: key !== undefined,
      credentialHint: maskCredential(key),
      warnings,
      getCredential: async () => {
        if (key === undefined) throw new ProviderCredentialError('OPENAI_API_KEY is not set');
        return { scheme: 'Bearer', token: key };
      },
    };
  },
};
