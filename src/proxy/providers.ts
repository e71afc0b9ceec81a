import { openaiProvider } from './openai.js';
import type { ProxyProvider } from './provider.js';

/** Every provider `hermes proxy` knows; the first is the default. Add one line per new provider file. */
export const PROXY_PROVIDERS: readonly ProxyProvider[] = [openaiProvider];

export const DEFAULT_PROXY_PROVIDER = 'openai';

export function findProvider(name: string): ProxyProvider | undefined {
  return PROXY_PROVIDERS.find((provider) => provider.name === name.trim().toLowerCase());
}

export function providerNames(): string[] {
  return PROXY_PROVIDERS.map((provider) => provider.name);
}
