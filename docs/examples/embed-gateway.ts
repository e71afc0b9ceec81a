/**
 * Run a gateway in your own process: enroll it with a single-use token (minted with
 * `createEnrollmentToken`, or `hermes connector enroll-token create`), then start it. It dials the
 * connector, receives the tenant's messages and answers them with the agent its configuration names.
 */
import {
  createLogger,
  enrollGateway,
  ensureHome,
  loadGatewayConfig,
  type RunningGateway,
  startGateway,
} from 'hermes-relay/gateway';

export async function runGateway(options: {
  /** The connector, e.g. `http://127.0.0.1:8700`. */
  connectorUrl: string;
  /** The single-use enrollment token. */
  token: string;
  /** The tenant's access token (what `HERMES_PORTAL_TOKEN` holds for `hermes gateway enroll`). */
  portalToken: string;
  /** The gateway's folder: its lock, status file, inbox and conversation history. */
  home: string;
}): Promise<RunningGateway> {
  const enrolled = await enrollGateway({
    connectorUrl: options.connectorUrl,
    token: options.token,
    gatewayId: 'gw-embedded',
    portalToken: options.portalToken,
  });
  if (!enrolled.ok) throw new Error(`enrollment failed: ${enrolled.message}`);
  // Keep the secret and the delivery key somewhere safe (mode 0600) to start again without a token.
  const config = loadGatewayConfig({
    home: ensureHome(options.home),
    env: {
      GATEWAY_RELAY_URL: `${options.connectorUrl.replace(/^http/, 'ws')}/relay`,
      GATEWAY_RELAY_ID: enrolled.gatewayId,
      GATEWAY_RELAY_SECRET: enrolled.secret,
      GATEWAY_RELAY_DELIVERY_KEY: enrolled.deliveryKey,
      HERMES_AGENT: 'echo',
    },
  });
  // Resolves once started; `stop('planned')` drains running turns and resolves with the exit code.
  return startGateway({ config, log: createLogger('info', 'gateway') });
}
