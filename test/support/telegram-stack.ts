import { FakeTelegram } from './fake-telegram.js';
import { type RelayStack, startRelayStack } from './relay-stack.js';

/** The fake Bot API ⇄ a real connector ⇄ a real gateway, with the chat `chatId` routed to it. */
export interface TelegramStack extends RelayStack {
  telegram: FakeTelegram;
}

export async function startTelegramStack(options: {
  dir: string;
  chatId: number;
  agentEnv: NodeJS.ProcessEnv;
  /** The route key bound to the gateway instead of `chatId` (`*`: every chat of the bot). */
  routeKey?: string;
  /** More connector settings (e.g. `TELEGRAM_MAX_RETRY_AFTER_SECONDS`). */
  connectorEnv?: NodeJS.ProcessEnv;
}): Promise<TelegramStack> {
  const telegram = await FakeTelegram.start();
  let stack: RelayStack;
  try {
    stack = await startRelayStack({
      dir: options.dir,
      platform: 'telegram',
      routeKey: options.routeKey ?? String(options.chatId),
      connectorEnv: {
        TELEGRAM_BOT_TOKEN: telegram.token,
        TELEGRAM_API_ROOT: telegram.apiRoot,
        ...options.connectorEnv,
      },
      agentEnv: options.agentEnv,
    });
  } catch (error) {
    await telegram.close();
    throw error;
  }
  return {
    ...stack,
    telegram,
    stop: async () => {
      await stack.stop();
      await telegram.close();
    },
  };
}
