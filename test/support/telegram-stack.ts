import { join } from 'node:path';
import { readRuntimeStatus } from '../../src/home/status-file.js';
import { FakeTelegram } from './fake-telegram.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  startHermes,
  until,
} from './processes.js';

/**
 * Fake Bot API ⇄ real connector process ⇄ real gateway process (socket delivery), with the chat
 * `chatId` routed to the gateway's tenant: what the Telegram end-to-end suites share.
 */
export interface TelegramStack {
  telegram: FakeTelegram;
  connector: RunningProcess & { url: string };
  gateway: RunningProcess;
  stop(): Promise<void>;
}

export async function startTelegramStack(options: {
  dir: string;
  chatId: number;
  agentEnv: NodeJS.ProcessEnv;
}): Promise<TelegramStack> {
  const db = join(options.dir, 'connector.db');
  const home = join(options.dir, 'home');
  const telegram = await FakeTelegram.start();
  const { accessToken } = await hermesJson<{ accessToken: string }>([
    'connector',
    'tenant',
    'create',
    'tg',
    '--db',
    db,
  ]);
  const { token } = await hermesJson<{ token: string }>([
    'connector',
    'enroll-token',
    'create',
    '--tenant',
    'tg',
    '--db',
    db,
  ]);
  const connector = await startConnectorProcess(db, {
    TELEGRAM_BOT_TOKEN: telegram.token,
    TELEGRAM_API_ROOT: telegram.apiRoot,
  });
  const env = {
    HERMES_HOME: home,
    HERMES_PORTAL_TOKEN: accessToken,
    GATEWAY_RELAY_PLATFORM: 'telegram',
    ...options.agentEnv,
  };
  const enrolled = await hermes(
    ['gateway', 'enroll', '--token', token, '--connector-url', connector.url, '--gateway-id', 'gw-tg'],
    env,
  );
  if (enrolled.code !== 0) throw new Error(`gateway enroll failed: ${enrolled.stderr}`);
  const route = await hermes(
    [
      'connector',
      'route',
      'add',
      '--tenant',
      'tg',
      '--platform',
      'telegram',
      '--key',
      String(options.chatId),
    ].concat(['--gateway', 'gw-tg', '--db', db]),
  );
  if (route.code !== 0) throw new Error(`route add failed: ${route.stderr}`);
  const gateway = startHermes(['gateway', 'run'], env);
  await gateway.waitFor(/gateway running for/);
  await until(
    () => readRuntimeStatus(home)?.platforms.relay?.state === 'connected' || undefined,
    15_000,
    'relay connected',
  );
  return {
    telegram,
    connector,
    gateway,
    stop: async () => {
      await gateway.stop();
      await connector.stop();
      await telegram.close();
    },
  };
}
