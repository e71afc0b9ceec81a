import { join } from 'node:path';
import { readRuntimeStatus } from '../../src/home/status-file.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  startHermes,
  until,
} from './processes.js';

/**
 * A real connector process (fronting a platform through its local fake) ⇄ a real, enrolled gateway
 * process on the socket, with one route key of the platform bound to the gateway's tenant: what
 * the platform end-to-end suites share.
 */
export interface RelayStack {
  connector: RunningProcess & { url: string };
  gateway: RunningProcess;
  home: string;
  db: string;
  stop(): Promise<void>;
}

export async function startRelayStack(options: {
  dir: string;
  platform: string;
  routeKey: string;
  /** The platform's settings for the connector (token, API root of the fake, …). */
  connectorEnv: NodeJS.ProcessEnv;
  /** The agent and anything else for the gateway. */
  agentEnv: NodeJS.ProcessEnv;
  /** The identity the gateway says hello as (current §4.3); default the platform with no bot id. */
  gatewayEnv?: NodeJS.ProcessEnv;
}): Promise<RelayStack> {
  const db = join(options.dir, 'connector.db');
  const home = join(options.dir, 'home');
  const tenant = `${options.platform}-tenant`;
  const gatewayId = `gw-${options.platform}`;
  const { accessToken } = await hermesJson<{ accessToken: string }>([
    'connector',
    'tenant',
    'create',
    tenant,
    '--db',
    db,
  ]);
  const { token } = await hermesJson<{ token: string }>([
    'connector',
    'enroll-token',
    'create',
    '--tenant',
    tenant,
    '--db',
    db,
  ]);
  const connector = await startConnectorProcess(db, options.connectorEnv);
  const env = {
    HERMES_HOME: home,
    HERMES_PORTAL_TOKEN: accessToken,
    GATEWAY_RELAY_PLATFORM: options.platform,
    ...options.gatewayEnv,
    ...options.agentEnv,
  };
  try {
    const enrolled = await hermes(
      ['gateway', 'enroll', '--token', token, '--connector-url', connector.url, '--gateway-id', gatewayId],
      env,
    );
    if (enrolled.code !== 0) throw new Error(`gateway enroll failed: ${enrolled.stderr}`);
    const route = await hermes([
      'connector',
      'route',
      'add',
      '--tenant',
      tenant,
      '--platform',
      options.platform,
      '--key',
      options.routeKey,
      '--gateway',
      gatewayId,
      '--db',
      db,
    ]);
    if (route.code !== 0) throw new Error(`route add failed: ${route.stderr}`);
  } catch (error) {
    await connector.stop();
    throw error;
  }
  const gateway = startHermes(['gateway', 'run'], env);
  await gateway.waitFor(/gateway running for/);
  await until(
    () => readRuntimeStatus(home)?.platforms.relay?.state === 'connected' || undefined,
    15_000,
    'relay connected',
  );
  return {
    connector,
    gateway,
    home,
    db,
    stop: async () => {
      await gateway.stop();
      await connector.stop();
    },
  };
}
