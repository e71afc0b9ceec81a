/**
 * The provider seam of `hermes proxy` (reference lifecycle §4.2 "adapters"): a provider knows where
 * its upstream lives, which relative paths under `/v1/` it may serve, and how to obtain the
 * credential the proxy attaches. Adding a provider = one file exporting a `ProxyProvider` plus its
 * entry in `providers.ts`.
 */

/** Where a provider reads its configuration from. */
export interface ProviderContext {
  /** The resolved `HERMES_HOME` (or profile home); `$HERMES_HOME/.env` is already loaded into `env`. */
  home: string;
  env: NodeJS.ProcessEnv;
}

/** The value of the upstream `Authorization` header is `<scheme> <token>`. */
export interface UpstreamCredential {
  scheme: string;
  token: string;
}

/** A provider resolved against one home/env. Never holds anything that prints the credential. */
export interface ProviderUpstream {
  /** Upstream base URL including its version prefix (e.g. `https://api.openai.com/v1`), no trailing `/`. */
  baseUrl: string;
  /** True when a credential is available (the proxy refuses to start otherwise). */
  configured: boolean;
  /** Safe-to-print hint of the credential (`sk-…abcd` or `set`), null when unset. */
  credentialHint: string | null;
  /** Non-fatal configuration notes (never contain secret values). */
  warnings: string[];
  /** The credential for one upstream request; throws `ProviderCredentialError` when none can be had. */
  getCredential(): Promise<UpstreamCredential>;
}

export interface ProxyProvider {
  /** CLI name (`--provider <name>`). */
  readonly name: string;
  /** Human name used in messages (`Not logged into <displayName>. …`). */
  readonly displayName: string;
  /** What the user runs to configure the credential (`Run \`<authHint>\` first.`). */
  readonly authHint: string;
  /** The env/.env key holding the credential, when it is one (for hints; never its value). */
  readonly credentialEnv?: string;
  /** Relative paths served under `/v1` (a path also allows its sub-paths, e.g. `/models/<id>`). */
  readonly allowedPaths: readonly string[];
  /** Resolve configuration for a home; throws a one-line Error for malformed configuration. */
  load(context: ProviderContext): ProviderUpstream;
}

/** No usable credential for a request (mapped to 401 `upstream_auth_failed`). */
export class ProviderCredentialError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProviderCredentialError';
  }
}

/** The reference refusal: `Not logged into <display>. Run \`<auth hint>\` first.` */
export function notLoggedInMessage(provider: ProxyProvider): string {
  return `Not logged into ${provider.displayName}. Run \`${provider.authHint}\` first.`;
}

/**
 * A printable hint of a secret: a short alphabetic prefix such as `sk-` and the last 4 characters
 * (`sk-…abcd`) when the secret is long enough that this reveals little, otherwise just `set`.
 */
export function maskCredential(secret: string | undefined | null): string | null {
  if (secret === undefined || secret === null || secret.trim() === '') return null;
  const value = secret.trim();
  if (value.length < 16) return 'set';
  const prefix = /^[A-Za-z]{2,4}-/.exec(value)?.[0] ?? '';
  return `${prefix}…${value.slice(-4)}`;
}

export { redactUrl } from '../common/redact.js';
