import { createHash } from 'node:crypto';

/**
 * The cluster lease of a bot's platform connection (`PlatformAdapter.exclusiveLease`): named after
 * the bot, never with its token (lease names are visible on the bus).
 */
export function botLeaseName(platform: string, token: string): string {
  return `${platform}:${botKey(token)}`;
}

/** A stable name for a bot that never shows its token (a hash prefix): for leases and dedupe keys. */
export function botKey(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 16);
}
