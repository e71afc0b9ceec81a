import type { Command } from 'commander';
import { errorMessage } from '../common/errors.js';
import { parsePort } from '../connector/config.js';
import { parseTrustedProxyList, setPassword } from '../dashboard/auth/index.js';
import { startDashboard } from '../dashboard/server.js';
import { ensureHome, resolveHome } from '../home/home.js';
import { dashboardPage } from './dashboard-page.js';
import { CliError } from './errors.js';
import { gatewayContext } from './gateway-commands.js';
import { createLogger, logLevelFor } from './logger.js';
import { readSecretLine } from './prompt.js';
import { serveUntilSignal } from './serve-until-signal.js';
import { VERSION } from './version.js';

const DEFAULT_DASHBOARD_PORT = 9119;

/**
 * What `hermes dashboard` prints once it listens. The loopback session token is a credential: it
 * is shown only on an interactive terminal, never written to a pipe or file (a service's or the
 * demo's log). The page gets it on load either way; scripts can pin it with
 * HERMES_DASHBOARD_SESSION_TOKEN.
 */
export function startupBanner(
  running: { url: string; authRequired: boolean; sessionToken: string },
  output: { terminal: boolean; env: Readonly<Record<string, string | undefined>> },
): string {
  const head = `dashboard on ${running.url}/`;
  if (running.authRequired) return `${head} (login required)\n`;
  if (output.terminal)
    return `${head}\nAPI session token (header X-Hermes-Session-Token): ${running.sessionToken}\n`;
  const pinned = (output.env.HERMES_DASHBOARD_SESSION_TOKEN ?? '') !== '';
  return `${head}\nAPI session token: not shown (output is not a terminal); ${
    pinned
      ? 'it is the one in HERMES_DASHBOARD_SESSION_TOKEN'
      : 'set HERMES_DASHBOARD_SESSION_TOKEN to choose it'
  }\n`;
}

export function registerDashboardCommands(program: Command): void {
  const dashboard = program
    .command('dashboard')
    .description('status, drain and restart for a gateway home (default http://127.0.0.1:9119)')
    .option('--host <host>', 'bind address (non-loopback binds require a login)', '127.0.0.1')
    .option('--port <port>', 'port', String(DEFAULT_DASHBOARD_PORT))
    .option('--require-login', 'require a password login even on a loopback bind')
    .option('--allowed-host <name...>', 'extra Host header names to accept (behind a reverse proxy)')
    .option(
      '--trust-proxy [addresses]',
      'believe X-Forwarded-* headers from these reverse proxies (comma-separated IPs/CIDR blocks; alone: a proxy on this machine)',
    )
    .action(
      async (
        options: {
          host: string;
          port: string;
          requireLogin?: boolean;
          allowedHost?: string[];
          trustProxy?: boolean | string;
        },
        command: Command,
      ) => {
        const port = parsePort(options.port);
        if (port === undefined)
          throw new CliError(`--port must be a number from 0 to 65535, got "${options.port}"`, 2);
        let trustProxy: boolean | string[] = options.trustProxy === true;
        if (typeof options.trustProxy === 'string') {
          try {
            trustProxy = parseTrustedProxyList(options.trustProxy);
          } catch (error) {
            throw new CliError(`--trust-proxy: ${errorMessage(error)}`, 2);
          }
        }
        const { home, config } = gatewayContext(command);
        ensureHome(home);
        const verbose = command.optsWithGlobals<{ verbose?: boolean }>().verbose;
        const log = createLogger(logLevelFor('dashboard', verbose ? 'debug' : undefined), 'dashboard');
        let running: Awaited<ReturnType<typeof startDashboard>>;
        try {
          running = await startDashboard({
            home,
            profile: command.optsWithGlobals<{ profile?: string }>().profile ?? null,
            host: options.host,
            port,
            log,
            version: VERSION,
            restartDrainTimeout: config.restartDrainTimeoutSeconds,
            requireLogin: options.requireLogin ?? false,
            allowedHosts: options.allowedHost,
            trustProxy,
            ...dashboardPage,
          });
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          if (code === 'EADDRINUSE')
            throw new CliError(`port ${port} on ${options.host} is already in use; pick another with --port`);
          throw new CliError(errorMessage(error));
        }
        await serveUntilSignal(
          running,
          startupBanner(running, { terminal: process.stdout.isTTY === true, env: process.env }),
        );
      },
    );

  dashboard
    .command('set-password')
    .description('set the dashboard login (scrypt-hashed in $HERMES_HOME/dashboard-auth.json, mode 0600)')
    .option('--username <name>', 'login name', 'admin')
    .option('--password-stdin', 'read the password from standard input (for scripts)')
    .action(async (options: { username: string; passwordStdin?: boolean }, command: Command) => {
      const home = resolveHome({
        env: process.env,
        profile: command.optsWithGlobals<{ profile?: string }>().profile,
      }).home;
      ensureHome(home);
      let password: string;
      try {
        password = await readSecretLine(options.passwordStdin ? '' : 'New dashboard password: ');
      } catch {
        throw new CliError('no password given');
      }
      try {
        await setPassword(home, options.username, password);
      } catch (error) {
        throw new CliError(errorMessage(error));
      }
      process.stdout.write(
        `dashboard password set for ${options.username}; restart the dashboard to use it\n`,
      );
    });
}
