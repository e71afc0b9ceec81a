import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { errorMessage } from '../common/errors.js';
import { parsePort } from '../connector/config.js';
import { ENV_FILE_NAME, loadEnvFile } from '../home/env-file.js';
import { ensureHome, resolveHome } from '../home/home.js';
import { isProcessAlive } from '../home/pid-lock.js';
import { httpUrl, isLoopbackHost } from '../proxy/http.js';
import { type ProviderContext, type ProxyProvider, redactUrl } from '../proxy/provider.js';
import { DEFAULT_PROXY_PROVIDER, PROXY_PROVIDERS, providerNames } from '../proxy/providers.js';
import {
  DEFAULT_PROXY_HOST,
  DEFAULT_PROXY_PORT,
  ProxyStartError,
  type RunningProxy,
  startProxy,
} from '../proxy/server.js';
import {
  type ProxyState,
  probeHealth,
  reachableUrl,
  readProxyState,
  removeProxyState,
} from '../proxy/state.js';
import { CliError } from './errors.js';
import { printJson, printTable, STATUS_EXIT_CODES_HELP, STATUS_NOT_RUNNING } from './format.js';
import { createLogger, logLevelFor } from './logger.js';
import { serveUntilSignal } from './serve-until-signal.js';

/**
 * `hermes proxy start|status|providers` (reference lifecycle §4.2): a local OpenAI-compatible
 * endpoint (default http://127.0.0.1:8645/v1) that attaches the configured upstream credential.
 */

interface GlobalOptions {
  verbose?: boolean;
  profile?: string;
}

/** The home for this invocation with `$HERMES_HOME/.env` loaded into process.env (env wins). */
function proxyContext(command: Command): ProviderContext {
  let home: string;
  try {
    home = resolveHome({ env: process.env, profile: command.optsWithGlobals<GlobalOptions>().profile }).home;
  } catch (error) {
    throw new CliError(errorMessage(error), 2);
  }
  try {
    loadEnvFile(join(home, ENV_FILE_NAME), process.env);
  } catch (error) {
    throw new CliError(errorMessage(error));
  }
  return { home, env: process.env };
}

export type ProviderReadinessStatus = 'ready' | 'not_logged_in' | 'needs_attention';

export interface ProviderReadiness {
  name: string;
  display_name: string;
  status: ProviderReadinessStatus;
  /** `sk-…abcd`, `set`, or null — never the credential itself. */
  credential: string | null;
  upstream: string | null;
  allowed_paths: string[];
  hint: string | null;
  warnings: string[];
}

/** Readiness of every provider for a home (no network, no secrets in the result). */
function providerReadiness(context: ProviderContext): ProviderReadiness[] {
  return PROXY_PROVIDERS.map((provider) => readinessOf(provider, context));
}

function readinessOf(provider: ProxyProvider, context: ProviderContext): ProviderReadiness {
  const base = {
    name: provider.name,
    display_name: provider.displayName,
    allowed_paths: [...provider.allowedPaths],
  };
  try {
    const upstream = provider.load(context);
    return {
      ...base,
      status: upstream.configured ? 'ready' : 'not_logged_in',
      credential: upstream.credentialHint,
      upstream: redactUrl(upstream.baseUrl),
      hint: upstream.configured ? null : setupHint(provider, context.home),
      warnings: upstream.warnings,
    };
  } catch (error) {
    return {
      ...base,
      status: 'needs_attention',
      credential: null,
      upstream: null,
      hint: errorMessage(error),
      warnings: [],
    };
  }
}

function setupHint(provider: ProxyProvider, home: string): string {
  const envFile = provider.credentialEnv
    ? ` or add ${provider.credentialEnv} to ${join(home, ENV_FILE_NAME)}`
    : '';
  return `run \`${provider.authHint}\`${envFile}`;
}

function readinessLine(entry: ProviderReadiness): string {
  const label = `${entry.name} (${entry.display_name})`;
  if (entry.status === 'ready') {
    return `  ${label}: ready — credential ${entry.credential ?? 'set'}, upstream ${entry.upstream ?? '-'}`;
  }
  if (entry.status === 'not_logged_in') return `  ${label}: not logged in — ${entry.hint ?? ''}`;
  return `  ${label}: needs attention — ${entry.hint ?? ''}`;
}

export function registerProxyCommands(program: Command): void {
  const proxy = program
    .command('proxy')
    .description(
      `local OpenAI-compatible proxy that attaches the configured upstream credential (default http://${DEFAULT_PROXY_HOST}:${DEFAULT_PROXY_PORT}/v1)`,
    );

  proxy
    .command('start')
    .description(
      'run the proxy in the foreground (point clients at http://<host>:<port>/v1 with any API key)',
    )
    .addOption(
      new Option('--provider <name>', `upstream provider (${providerNames().join(', ')})`).default(
        DEFAULT_PROXY_PROVIDER,
      ),
    )
    .addOption(
      new Option('--host <host>', 'bind address; a non-loopback address is only accepted when given here')
        .default(DEFAULT_PROXY_HOST)
        .env('HERMES_PROXY_HOST'),
    )
    .addOption(
      new Option('--port <port>', 'port (0 picks a free one)')
        .default(String(DEFAULT_PROXY_PORT))
        .env('HERMES_PROXY_PORT'),
    )
    .option('-q, --quiet', 'no per-request log lines (warnings and errors only)')
    .action(
      async (
        options: { provider: string; host: string; port: string; quiet?: boolean },
        command: Command,
      ) => {
        // A blank HERMES_PROXY_HOST / HERMES_PROXY_PORT counts as unset.
        const host = options.host.trim() || DEFAULT_PROXY_HOST;
        const portText = options.port.trim() || String(DEFAULT_PROXY_PORT);
        const port = parsePort(portText);
        if (port === undefined)
          throw new CliError(`--port must be a number from 0 to 65535, got "${portText}"`, 2);
        const hostIsExplicit = command.getOptionValueSource('host') === 'cli';
        const context = proxyContext(command);
        const verbose = command.optsWithGlobals<GlobalOptions>().verbose;
        const log = createLogger(
          logLevelFor('proxy', verbose ? 'debug' : options.quiet ? 'warn' : undefined),
          'proxy',
        );

        if (!isLoopbackHost(host) && !hostIsExplicit) {
          throw new CliError(
            `Refusing to bind the proxy to ${host} (from HERMES_PROXY_HOST): it would expose your upstream credentials to the network. Pass --host ${host} explicitly to allow it.`,
            2,
          );
        }
        ensureHome(context.home);
        let running: RunningProxy;
        try {
          running = await startProxy({
            home: context.home,
            env: context.env,
            provider: options.provider,
            host,
            port,
            allowNonLoopback: hostIsExplicit,
            writeStateFile: true,
            log,
          });
        } catch (error) {
          if (error instanceof ProxyStartError) {
            if (error.code === 'not_configured') {
              const provider = PROXY_PROVIDERS.find(
                (entry) => entry.name === options.provider.trim().toLowerCase(),
              );
              const extra =
                provider?.credentialEnv !== undefined
                  ? ` (Or add ${provider.credentialEnv} to ${join(context.home, ENV_FILE_NAME)}.)`
                  : '';
              throw new CliError(`${error.message}${extra}`, error.exitCode);
            }
            throw new CliError(error.message, error.exitCode);
          }
          const code = (error as NodeJS.ErrnoException).code;
          if (code === 'EADDRINUSE') {
            throw new CliError(`port ${port} on ${host} is already in use; pick another with --port`);
          }
          if (code === 'EADDRNOTAVAIL') throw new CliError(`cannot bind to ${host}: no such local address`);
          throw new CliError(errorMessage(error));
        }
        // proxy.json is written by startProxy; a plain exit must not leave it behind either.
        const cleanup = () => removeProxyState(context.home);
        process.once('exit', cleanup);

        if (!isLoopbackHost(running.host)) {
          process.stderr.write(
            `hermes: warning: the proxy listens on ${running.host}, not loopback: anyone who can reach port ${running.port} can use your upstream credentials\n`,
          );
        }
        for (const warning of running.warnings) process.stderr.write(`hermes: warning: ${warning}\n`);
        await serveUntilSignal(
          running,
          `proxy listening on ${running.url} (provider ${running.provider} → ${running.upstream})\nOpenAI base URL for clients: ${running.url}/v1 (any API key)\n`,
        );
        process.off('exit', cleanup);
      },
    );

  proxy
    .command('status')
    .description('whether a proxy runs for this home (proxy.json + /health) and provider readiness')
    .option('--json', 'print JSON')
    .addHelpText('after', STATUS_EXIT_CODES_HELP)
    .action(async (options: { json?: boolean }, command: Command) => {
      const context = proxyContext(command);
      const read = readProxyState(context.home);
      const state: ProxyState | undefined = read.kind === 'ok' ? read.state : undefined;
      const alive = state !== undefined && isProcessAlive(state.pid);
      const baseUrl = state ? reachableUrl(state.host, state.port) : undefined;
      const health = alive && baseUrl ? await probeHealth(baseUrl) : undefined;
      const providers = providerReadiness(context);
      const running = alive && health?.ok === true;
      const summary = {
        home: context.home,
        running,
        pid: state?.pid ?? null,
        process_alive: alive,
        url: baseUrl ? `${baseUrl}/v1` : null,
        host: state?.host ?? null,
        port: state?.port ?? null,
        provider: state?.provider ?? null,
        started_at: state?.started_at || null,
        stale: state !== undefined && !alive,
        state_file_error: read.kind === 'invalid' ? read.reason : null,
        health: health?.body ?? null,
        health_error: health && !health.ok ? (health.error ?? `HTTP ${health.status ?? '?'}`) : null,
        providers,
      };
      if (options.json) return printJson(summary);

      const lines: string[] = [];
      if (running && state) {
        lines.push(
          `✓ Proxy is running (PID: ${state.pid}) on ${summary.url}`,
          `  provider: ${state.provider} → ${String(health?.body?.upstream ?? '-')}${health?.body?.authenticated === true ? ' (authenticated)' : ''}`,
          `  started: ${summary.started_at ?? '-'}`,
        );
      } else if (alive && state) {
        lines.push(
          `✗ Proxy process ${state.pid} is alive but ${httpUrl(state.host, state.port)}/health does not answer (${summary.health_error ?? 'unknown'})`,
        );
      } else {
        lines.push('✗ Proxy is not running');
        if (summary.stale && state) lines.push(`  (stale proxy.json for PID ${state.pid})`);
        if (summary.state_file_error) lines.push(`  (unreadable proxy.json: ${summary.state_file_error})`);
        lines.push('  To start: hermes proxy start');
      }
      lines.push('Providers:');
      for (const entry of providers) lines.push(readinessLine(entry));
      process.stdout.write(`${lines.join('\n')}\n`);
      // LSB: alive without an answer, or an unreadable proxy.json, is an error (1); else not running (3).
      if (!running) process.exitCode = (alive && state) || summary.state_file_error ? 1 : STATUS_NOT_RUNNING;
    });

  proxy
    .command('providers')
    .alias('list')
    .description('the upstream providers and whether each is configured (credentials are never printed)')
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }, command: Command) => {
      const providers = providerReadiness(proxyContext(command));
      if (options.json) return printJson(providers);
      printTable(
        providers.map((entry) => ({
          ...entry,
          display: entry.display_name,
          status: entry.status.replace(/_/g, ' '),
          paths: entry.allowed_paths.join(' '),
        })),
        ['name', 'display', 'status', 'credential', 'upstream', 'paths'],
      );
      for (const entry of providers) {
        if (entry.hint) process.stdout.write(`${entry.name}: ${entry.hint}\n`);
        for (const warning of entry.warnings) process.stdout.write(`${entry.name}: warning: ${warning}\n`);
      }
    });
}
