import { join } from 'node:path';
import type { Command } from 'commander';
import { isUsableSecret } from '../auth/index.js';
import { errorMessage } from '../common/errors.js';
import { defaultGatewayId, enrollGateway } from '../gateway/enroll.js';
import { resolveIdentityToken } from '../gateway/identity-token.js';
import { metricsListenerFromEnv } from '../gateway/metrics.js';
import { GatewayStartupError, startGateway } from '../gateway/runner.js';
import { gatewayLogPath } from '../gateway/service/detached.js';
import { type GatewayConfig, GatewayConfigError, loadGatewayConfig } from '../home/config.js';
import { ENV_FILE_NAME, loadEnvFile, saveEnvValues } from '../home/env-file.js';
import { type GatewayStatus, gatewayStatus, gatewayStatusJson } from '../home/gateway-status.js';
import { ensureHome, resolveHome } from '../home/home.js';
import { watchInheritedLog } from '../home/log-rotation.js';
import type { PlatformStatusEntry } from '../home/status-file.js';
import { CliError } from './errors.js';
import { printJson, STATUS_EXIT_CODES_HELP, STATUS_NOT_RUNNING } from './format.js';
import { registerGatewayServiceCommands } from './gateway-service-commands.js';
import { createLogger, logLevelFor } from './logger.js';
import { VERSION } from './version.js';

interface GlobalOptions {
  profile?: string;
  verbose?: boolean;
}

/** Home, `.env` and config for a gateway command; config problems are one clear line (exit 78 for run). */
export function gatewayContext(
  command: Command,
  exitCodeOnConfigError = 1,
): { home: string; config: GatewayConfig } {
  const globals = command.optsWithGlobals<GlobalOptions>();
  let home: string;
  try {
    home = resolveHome({ env: process.env, profile: globals.profile }).home;
  } catch (error) {
    throw new CliError(errorMessage(error), 2);
  }
  try {
    // An unreadable .env is a configuration error like a malformed config.yaml (78 for run).
    loadEnvFile(join(home, ENV_FILE_NAME), process.env);
    return { home, config: loadGatewayConfig({ home, env: process.env }) };
  } catch (error) {
    const unreadableEnv = error instanceof Error && error.message.startsWith('Cannot read ');
    if (error instanceof GatewayConfigError || unreadableEnv)
      throw new CliError((error as Error).message, exitCodeOnConfigError);
    throw error;
  }
}

export function registerGatewayCommands(program: Command): void {
  const gateway = program
    .command('gateway')
    .description('the agent runtime: dials the connector, runs agent turns');
  registerGatewayServiceCommands(gateway);

  gateway
    .command('run')
    .description('run the gateway in the foreground')
    .option('-q, --quiet', 'only warnings and errors')
    .option('--replace', 'take over from a gateway already running for this home')
    .option('--force', 'run even if a service supervises this profile')
    .action(async (options: { quiet?: boolean; replace?: boolean }, command: Command) => {
      const { config } = gatewayContext(command, 78);
      ensureHome(config.home);
      const verbose = command.optsWithGlobals<GlobalOptions>().verbose;
      const log = createLogger(
        logLevelFor('gateway', verbose ? 'debug' : options.quiet ? 'warn' : undefined, { exitCode: 78 }),
        'gateway',
      );
      for (const warning of config.warnings) log.warn(warning);
      // Started detached (`hermes gateway start` without systemd), stderr is the home's gateway.log: rotate it.
      watchInheritedLog(gatewayLogPath(config.home), {
        onError: (error) => log.warn({ err: errorMessage(error) }, 'gateway.log not rotated'),
      });
      let metricsListener: ReturnType<typeof metricsListenerFromEnv>;
      try {
        metricsListener = metricsListenerFromEnv(process.env);
      } catch (error) {
        throw new CliError(errorMessage(error), 78);
      }
      let running: Awaited<ReturnType<typeof startGateway>>;
      try {
        running = await startGateway({
          config,
          log,
          replace: options.replace ?? false,
          secondaryDeliveryKey: process.env.GATEWAY_RELAY_DELIVERY_KEY_SECONDARY,
          signals: true,
          metricsListener,
          version: VERSION,
        });
      } catch (error) {
        if (error instanceof GatewayStartupError) throw new CliError(error.message, error.exitCode);
        throw error;
      }
      process.stdout.write(
        `gateway running for ${config.home} (relay ${config.relayUrl}); Ctrl-C stops it after running turns finish\n`,
      );
      const code = await running.done;
      process.exitCode = code;
    });

  gateway
    .command('enroll')
    .description(
      'redeem a single-use enrollment token and store this gateway’s credentials in $HERMES_HOME/.env',
    )
    .option('--token <token>', 'enrollment token (default: $GATEWAY_RELAY_ENROLL_TOKEN)')
    .option('--connector-url <url>', 'connector URL (default: $GATEWAY_RELAY_URL / gateway.relay_url)')
    .option('--gateway-id <id>', 'this gateway’s id (default: gw-<hostname>)')
    .option(
      '--wake-url <url>',
      'URL the connector GETs to wake this gateway when a message arrives while it is idle (default: $GATEWAY_RELAY_WAKE_URL / gateway.relay_wake_url)',
    )
    .addHelpText(
      'after',
      '\nThe identity token is the identity provider’s (GATEWAY_RELAY_IDP_TOKEN_URL, …) when one is set, else HERMES_PORTAL_TOKEN / auth.json.',
    )
    .action(
      async (
        options: { token?: string; connectorUrl?: string; gatewayId?: string; wakeUrl?: string },
        command: Command,
      ) => {
        const { home, config } = gatewayContext(command);
        if (config.managed) {
          throw new CliError(
            'this gateway is managed: its relay secret comes from the hosting platform, so enrollment is not used here',
          );
        }
        const connectorUrl = options.connectorUrl ?? config.relayUrl;
        if (!connectorUrl)
          throw new CliError('no connector URL: pass --connector-url or set GATEWAY_RELAY_URL', 2);
        const token = options.token ?? config.enrollToken;
        if (!isUsableSecret(token))
          throw new CliError('no enrollment token: pass --token or set GATEWAY_RELAY_ENROLL_TOKEN', 2);
        const wakeUrl = options.wakeUrl?.trim().replace(/\/+$/, '') || config.wakeUrl;
        if (wakeUrl !== undefined && !/^https?:\/\/[^/\s]+/i.test(wakeUrl))
          throw new CliError(
            `--wake-url must be an http:// or https:// URL, got ${JSON.stringify(wakeUrl)}`,
            2,
          );
        if (!config.idp && !isUsableSecret(config.portalToken)) {
          throw new CliError(
            `no identity token: set HERMES_PORTAL_TOKEN or write {"access_token": …} to ${join(home, 'auth.json')}`,
          );
        }
        const identity = await resolveIdentityToken({ idp: config.idp, portalToken: config.portalToken });
        if (!identity.ok) throw new CliError(`enrollment failed: ${identity.error}`);
        const result = await enrollGateway({
          connectorUrl,
          token,
          gatewayId: options.gatewayId ?? config.relayId ?? defaultGatewayId(),
          portalToken: identity.token,
          wakeUrl,
          instanceId: config.instanceId,
          displayName: config.displayName,
        });
        if (!result.ok) throw new CliError(`enrollment failed: ${result.message}`);
        ensureHome(home);
        const values: Record<string, string> = {
          GATEWAY_RELAY_ID: result.gatewayId,
          GATEWAY_RELAY_SECRET: result.secret,
          GATEWAY_RELAY_DELIVERY_KEY: result.deliveryKey,
        };
        if (options.connectorUrl) values.GATEWAY_RELAY_URL = options.connectorUrl;
        if (options.wakeUrl) values.GATEWAY_RELAY_WAKE_URL = wakeUrl as string;
        saveEnvValues(join(home, ENV_FILE_NAME), values);
        process.stdout.write(
          `enrolled as ${result.gatewayId} (tenant ${result.tenant}); credentials written to ${join(home, ENV_FILE_NAME)} (mode 0600)\n` +
            'restart the gateway to use them: hermes gateway run --replace\n',
        );
      },
    );

  gateway
    .command('status')
    .description('state from gateway_state.json plus process liveness')
    .option('--json', 'print JSON')
    .option('--deep', 'include per-platform details and the raw status record')
    .addHelpText('after', STATUS_EXIT_CODES_HELP)
    .action((options: { json?: boolean; deep?: boolean }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const home = resolveHome({ env: process.env, profile: globals.profile }).home;
      const status = gatewayStatus(home);
      const summary = { ...gatewayStatusJson(status), platforms: status.platforms };
      if (options.json) return printJson(options.deep ? { ...summary, record: status.record } : summary);
      process.stdout.write(`${renderGatewayStatus(home, status, options.deep === true).join('\n')}\n`);
      if (!status.running) process.exitCode = STATUS_NOT_RUNNING;
    });
}

/** The lines of `hermes gateway status`; `deep` adds each platform's details, the home and the last update. */
export function renderGatewayStatus(home: string, status: GatewayStatus, deep: boolean): string[] {
  const summary = { ...gatewayStatusJson(status), platforms: status.platforms };
  const lines: string[] = [];
  if (status.running) {
    lines.push(
      `✓ Gateway is running (PID: ${status.pid})`,
      `  state: ${summary.gateway_state ?? 'unknown'}`,
      `  active turns: ${summary.active_agents}`,
    );
  } else {
    const last = status.lastReportedState;
    lines.push(
      '✗ Gateway is not running',
      `  state: ${status.state}${summary.exit_reason ? ` (${summary.exit_reason})` : ''}` +
        (last === null
          ? ' (never started)'
          : last !== status.state
            ? ` — it last reported "${last}" and exited without saying so`
            : ''),
    );
  }
  for (const [name, platform] of Object.entries(summary.platforms)) {
    const entry = platform as PlatformStatusEntry;
    lines.push(
      `  ${name}: ${entry.state ?? 'unknown'}${entry.error_code ? ` — ${entry.error_code}: ${entry.error_message ?? ''}` : ''}`,
    );
    if (entry.error_code === 'relay_revoked')
      lines.push('    fix: this gateway was revoked; enroll it again with `hermes gateway enroll`');
    if (entry.error_code === 'relay_unreachable')
      lines.push('    fix: check GATEWAY_RELAY_URL and that the connector is running');
    if (entry.error_code === 'relay_unauthorized')
      lines.push('    fix: check GATEWAY_RELAY_ID / GATEWAY_RELAY_SECRET (or re-enroll)');
    if (deep) lines.push(...platformDetailLines(entry));
  }
  if (summary.gateway_state === 'draining' && status.running) {
    lines.push(
      '  draining: new turns are refused until the drain is cancelled (dashboard or .drain_request.json)',
    );
  }
  if (!status.running) lines.push('  To start: hermes gateway run');
  if (deep) lines.push(`  home: ${home}`, `  updated: ${summary.updated_at ?? '-'}`);
  return lines;
}

/** `--deep`: what the status record says about one platform beyond its state. */
function platformDetailLines(entry: PlatformStatusEntry): string[] {
  const details: [string, unknown][] = [
    ['needs attention', entry.needs_attention ? 'yes' : undefined],
    ['retrying since', entry.retrying_since],
    ['inbound URL (asserted to the connector)', entry.ingress_url],
    ['receiver listening on', entry.listener_base],
    ['updated', entry.updated_at],
    ['written by PID', entry.writer_pid],
  ];
  return details
    .filter(([, value]) => value !== undefined && value !== null && value !== '')
    .map(([label, value]) => `    ${label}: ${String(value)}`);
}
