import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * `HERMES_HOME` and named profiles (reference lifecycle §1.1): the home defaults to `~/.hermes`;
 * profile `p` lives at `<HERMES_HOME>/profiles/<p>`. Every gateway file (status, PID record,
 * markers, `.env`, `config.yaml`) lives in the resolved home.
 */

const PROFILE_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export interface ResolvedHome {
  /** Absolute directory holding this gateway's files. */
  home: string;
  /** The profile name, or undefined for the root home. */
  profile: string | undefined;
}

export interface ResolveHomeOptions {
  env: NodeJS.ProcessEnv;
  /** Named profile; undefined or empty means the root home. */
  profile?: string | undefined;
}

export function isValidProfileName(name: string): boolean {
  return PROFILE_NAME_PATTERN.test(name);
}

/** The root `HERMES_HOME` (`~` expanded, made absolute). */
export function resolveHermesRoot(env: NodeJS.ProcessEnv): string {
  const configured = env.HERMES_HOME?.trim();
  if (!configured) return join(homedir(), '.hermes');
  if (configured === '~') return homedir();
  if (configured.startsWith('~/')) return join(homedir(), configured.slice(2));
  return resolve(configured);
}

/** Resolve the home directory; throws a one-line Error for a profile name outside the reference regex. */
export function resolveHome(options: ResolveHomeOptions): ResolvedHome {
  const root = resolveHermesRoot(options.env);
  const profile = options.profile;
  if (profile === undefined || profile === '') return { home: root, profile: undefined };
  if (!isValidProfileName(profile)) {
    throw new Error(
      `Invalid profile name ${JSON.stringify(profile)}: use 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit.`,
    );
  }
  return { home: join(root, 'profiles', profile), profile };
}

/** Create the home (and its parents) with mode 0700 when missing; an existing directory is left as is. */
export function ensureHome(home: string): string {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  return home;
}

/** The gateway's conversation history (SQLite), read by the dashboard too. */
export function conversationsPath(home: string): string {
  return join(home, 'state', 'conversations.db');
}

/** The gateway's durable inbox of accepted deliveries (SQLite). */
/** Inbound files fetched from the connector for agents (kept about an hour). */
export function mediaDownloadsPath(home: string): string {
  return join(home, 'state', 'media');
}

export function inboxPath(home: string): string {
  return join(home, 'state', 'inbox.db');
}
