import type { Logger } from 'pino';
import type { ConnectorConfig } from '../config.js';
import { DiscordAdapter } from './discord/adapter.js';
import { TelegramAdapter } from './telegram.js';
import type { PlatformAdapter } from './types.js';
import { WebChatAdapter } from './webchat/adapter.js';

/**
 * The platform adapters a connector runs for its configuration: the built-in web chat always,
 * Telegram and Discord when their bot tokens are set. A Discord configuration that cannot work
 * is one error line, and the others run. `startConnector` takes the list, so tests and benchmarks can
 * hand it their own.
 */
/** The platforms this connector's built-in adapters serve (embedders may add their own). */
export const BUILTIN_PLATFORMS: readonly string[] = ['webchat', 'telegram', 'discord'];

export function buildAdapters(config: ConnectorConfig, log: Logger): PlatformAdapter[] {
  const adapters: PlatformAdapter[] = [
    new WebChatAdapter({ log: log.child({ platform: 'webchat' }), ...config.webchat }),
  ];
  if (config.telegram) {
    adapters.push(
      new TelegramAdapter({
        token: config.telegram.token,
        apiRoot: config.telegram.apiRoot,
        maxRetryAfterSeconds: config.telegram.maxRetryAfterSeconds,
        log: log.child({ platform: 'telegram' }),
      }),
    );
  }
  if (config.discord && 'problem' in config.discord) {
    log.error({ platform: 'discord' }, `Discord not started: ${config.discord.problem}`);
  } else if (config.discord) {
    adapters.push(
      new DiscordAdapter({
        ...config.discord,
        log: log.child({ platform: 'discord' }),
      }),
    );
  }
  return adapters;
}
