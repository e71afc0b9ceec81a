import type { Logger } from 'pino';
import type { ConnectorConfig } from '../config.js';
import { TelegramAdapter } from './telegram.js';
import type { PlatformAdapter } from './types.js';
import { WebChatAdapter } from './webchat/adapter.js';

/**
 * The platform adapters a connector runs for its configuration: the built-in web chat always,
 * Telegram when a bot token is set. `startConnector` takes the list, so tests and benchmarks can
 * hand it their own.
 */
export function buildAdapters(config: ConnectorConfig, log: Logger): PlatformAdapter[] {
  const adapters: PlatformAdapter[] = [
    new WebChatAdapter({ log: log.child({ platform: 'webchat' }), ...config.webchat }),
  ];
  if (config.telegram) {
    adapters.push(
      new TelegramAdapter({
        token: config.telegram.token,
        apiRoot: config.telegram.apiRoot,
        log: log.child({ platform: 'telegram' }),
      }),
    );
  }
  return adapters;
}
