import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { errorMessage } from '../common/errors.js';
import { type LoadedConfig, offlineChecks } from '../gateway/doctor.js';
import {
  CONNECTOR_UNIT_NAME,
  ConnectorPreflightError,
  defaultConnectorEnvFile,
  planConnectorInstall,
  prepareConnectorEnvFile,
} from '../gateway/service/connector.js';
import { DetachedStartError, stopWaitMs } from '../gateway/service/detached.js';
import {
  installedScopes,
  type ServiceScope,
  systemScopeNeedsRoot,
  unitNameFor,
} from '../gateway/service/identity.js';
import {
  applyInstall,
  applyUnit,
  InstallUsageError,
  planInstall,
  resolveServiceUser,
} from '../gateway/service/install.js';
import { findLegacyUnits, type LegacyUnit } from '../gateway/service/legacy.js';
import {
  chooseScope,
  chooseServiceManager,
  type Notice,
  removeUnit,
  type ServiceManager,
  uninstallNamedUnit,
  uninstallUnit,
} from '../gateway/service/manager.js';
import { listProfileHomes, profileState } from '../gateway/service/profiles.js';
import {
  DEFAULT_SETUP_RELAY_URL,
  type ExistingSettings,
  httpUrlProblem,
  isAgentKind,
  readExistingSettings,
  relayUrlProblem,
  SetupError,
  type SetupValues,
  writeSetup,
} from '../gateway/service/setup.js';
import { Systemctl, SystemctlError } from '../gateway/service/systemctl.js';
import { CONFIG_EXIT_CODE } from '../gateway/service/unit.js';
import { removeFile } from '../home/atomic-file.js';
import {
  AGENT_KINDS,
  type AgentKind,
  DEFAULT_MODEL,
  DEFAULT_OPENAI_BASE_URL,
  DEFAULT_RESTART_DRAIN_TIMEOUT_SECONDS,
  loadGatewayConfig,
  parseDrainTimeout,
} from '../home/config.js';
import { ENV_FILE_NAME, loadEnvFile } from '../home/env-file.js';
import { gatewayStatus, gatewayStatusJson } from '../home/gateway-status.js';
import { ensureHome, resolveHermesRoot, resolveHome } from '../home/home.js';
import { readGatewayLiveness, writeIdleStopMarker } from '../home/pid-lock.js';
import { CliError } from './errors.js';
import { printJson, printTable, startProgress } from './format.js';
import { gatewayContext } from './gateway-commands.js';
import { confirm, confirmIrreversible, interactive, Prompter } from './prompt.js';

/**
 * Service lifecycle of the gateway (reference lifecycle §1.5–§1.7, §4.1): `install`, `uninstall`,
 * `start`, `stop`, `restart`, `list`, `setup`, `migrate-legacy`. With an installed unit and a
 * running systemd the service manager does the work (restart is drain-aware: SIGUSR1 first);
 * otherwise a detached `hermes gateway run` is managed directly.
 */

interface GlobalOptions {
  profile?: string;
}

interface Target {
  home: string;
  root: string;
  profile: string | undefined;
  unit: string;
}

const say = (line = '') => process.stdout.write(`${line}\n`);
const warn = (line: string) => process.stderr.write(`${line}\n`);

function resolveTarget(command: Command): Target {
  const globals = command.optsWithGlobals<GlobalOptions>();
  try {
    const { home, profile } = resolveHome({ env: process.env, profile: globals.profile });
    return { home, profile, root: resolveHermesRoot(process.env), unit: unitNameFor(home) };
  } catch (error) {
    throw new CliError(errorMessage(error), 2);
  }
}

function hermesCommand(target: Target, rest: string): string {
  return `hermes${target.profile ? ` --profile ${target.profile}` : ''} ${rest}`;
}

function statusHint(target: Target): string {
  return `  check: ${hermesCommand(target, 'gateway status')}`;
}

/**
 * Drain timeout for stop/restart waits. A broken config must not prevent stopping a gateway, so a
 * config error falls back to the environment / default with a warning.
 */
function drainSecondsFor(command: Command): number {
  try {
    return gatewayContext(command).config.restartDrainTimeoutSeconds;
  } catch (error) {
    if (error instanceof CliError && error.exitCode === 2) throw error;
    const seconds =
      parseDrainTimeout(process.env.HERMES_RESTART_DRAIN_TIMEOUT) ?? DEFAULT_RESTART_DRAIN_TIMEOUT_SECONDS;
    warn(`warning: ${errorMessage(error)} (using a drain timeout of ${seconds} s)`);
    return seconds;
  }
}

function systemctlCall<T>(call: () => T): T {
  try {
    return call();
  } catch (error) {
    if (error instanceof SystemctlError) throw new CliError(error.message);
    throw error;
  }
}

/** Run a manager operation: systemctl and detached-start failures become one-line CLI errors. */
async function serviceCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof CliError) throw error;
    if (error instanceof SystemctlError) throw new CliError(error.message);
    if (error instanceof DetachedStartError) {
      for (const line of error.logTail) warn(`  | ${line}`);
      throw new CliError(error.message);
    }
    throw new CliError(errorMessage(error));
  }
}

function systemRootError(action: string): CliError {
  return new CliError(
    `${action} a system service needs root: rerun with sudo, or leave out --system for a user service`,
  );
}

/** Tell what the manager noticed: information on stdout, warnings on stderr. */
function tell(notices: readonly Notice[]): void {
  for (const notice of notices) {
    if (notice.level === 'warning') warn(`warning: ${notice.text}`);
    else say(notice.text);
  }
}

/** The manager for this home (systemd or the detached fallback), saying once why it fell back. */
function managerFor(target: Target, system: boolean | undefined): ServiceManager {
  const { manager, fallbackReason } = chooseServiceManager(target, system);
  if (fallbackReason) say(fallbackReason);
  return manager;
}

// ---------------------------------------------------------------------------------------------
// start / stop / restart

function reportStarted(
  target: Target,
  what: string,
  started: { pid: number; logPath: string; running: boolean },
  previousPid?: number | null,
): void {
  const pids = previousPid ? ` (PID ${previousPid} → ${started.pid})` : ` (PID ${started.pid})`;
  say(`✓ ${what}${pids}`);
  if (!started.running) warn(`warning: the gateway holds its lock but has not reported "running" yet`);
  say(`  log: ${started.logPath}`);
  say(statusHint(target));
}

async function startCommand(options: { system?: boolean }, command: Command): Promise<void> {
  const target = resolveTarget(command);
  const { config } = gatewayContext(command);
  const manager = managerFor(target, options.system);
  if (manager.kind === 'detached' && !config.relayUrl && !readGatewayLiveness(target.home).running) {
    throw new CliError(
      `no relay configured: set GATEWAY_RELAY_URL or run \`${hermesCommand(target, 'gateway setup')}\``,
    );
  }
  const outcome = await serviceCall(() => manager.start(config.restartDrainTimeoutSeconds));
  tell(outcome.notices);
  switch (outcome.kind) {
    case 'unit_started':
      say(`✓ Started ${outcome.unit} (${outcome.scope} service)`);
      say(statusHint(target));
      return;
    case 'already_running':
      say(`✓ Gateway already running for this profile (PID ${outcome.pid})`);
      say(statusHint(target));
      return;
    case 'started':
      return reportStarted(target, 'Started gateway for this profile', outcome);
  }
}

/**
 * `call` (a stop or restart that waits for running turns), with progress on stderr while it waits:
 * what it waits for, then elapsed time and the turns still running. `systemctl stop` blocks this
 * process (no updates can be printed meanwhile), so under systemd a stop says what it waits for at once.
 */
async function withStopProgress<T>(
  target: Target,
  manager: ServiceManager,
  waitMs: number,
  verb: string,
  call: () => Promise<T>,
): Promise<T> {
  const liveness = readGatewayLiveness(target.home);
  const who = liveness.pid !== null ? `the gateway (PID ${liveness.pid})` : 'the gateway';
  if (manager.kind === 'systemd' && verb === 'stop' && liveness.running)
    process.stderr.write(
      `Waiting for systemd to stop ${who} after its running turns finish (up to ${Math.round(waitMs / 1000)} s)\n`,
    );
  const progress = startProgress({
    what: `${who} to finish its running turns and ${verb}`,
    limitMs: waitMs,
    detail: () => {
      const status = gatewayStatus(target.home);
      if (!status.running) return 'exited';
      const turns = gatewayStatusJson(status).active_agents;
      return `${turns} turn${turns === 1 ? '' : 's'} running${status.state === 'draining' ? ', draining' : ''}`;
    },
  });
  try {
    return await serviceCall(call);
  } finally {
    progress.stop();
  }
}

async function stopCommand(options: { system?: boolean }, command: Command): Promise<void> {
  const target = resolveTarget(command);
  const drain = drainSecondsFor(command);
  const manager = managerFor(target, options.system);
  const outcome = await withStopProgress(target, manager, stopWaitMs(drain), 'stop', () =>
    manager.stop(stopWaitMs(drain)),
  );
  tell(outcome.notices);
  switch (outcome.kind) {
    case 'unit_stopped':
      say(`✓ Stopped ${outcome.unit} service`);
      if (outcome.strayPid !== null)
        say(`✓ Stopped gateway for this profile (PID ${outcome.strayPid}, not run by the service)`);
      say(statusHint(target));
      return;
    case 'not_running':
      say('✗ No gateway running for this profile');
      return;
    case 'stopped':
      say(`✓ Stopped gateway for this profile (PID ${outcome.pid}${outcome.killed ? ', killed' : ''})`);
      say(statusHint(target));
      return;
  }
}

/**
 * Scale to zero on purpose (current §9): a planned stop in which the gateway says `going_idle`, so
 * the connector keeps its inbound (and pokes its wake URL, if one is registered) until it dials
 * again. Recorded as `stopped (idle)`.
 */
async function idleCommand(options: { system?: boolean }, command: Command): Promise<void> {
  const target = resolveTarget(command);
  const liveness = readGatewayLiveness(target.home);
  if (!liveness.running || liveness.pid === null) {
    say('✗ No gateway running for this profile');
    return;
  }
  writeIdleStopMarker(target.home, liveness.pid);
  const drain = drainSecondsFor(command);
  const manager = managerFor(target, options.system);
  const outcome = await withStopProgress(target, manager, stopWaitMs(drain), 'stop', () =>
    manager.stop(stopWaitMs(drain)),
  );
  tell(outcome.notices);
  if (outcome.kind === 'not_running') {
    say('✗ No gateway running for this profile');
    return;
  }
  say(`✓ Gateway idle (PID ${liveness.pid}): the connector keeps what arrives for it until it dials again`);
  say(`  resume: ${hermesCommand(target, 'gateway start')} (it takes the backlog first, in order)`);
}

async function restartCommand(options: { system?: boolean }, command: Command): Promise<void> {
  const target = resolveTarget(command);
  const drain = drainSecondsFor(command);
  const manager = managerFor(target, options.system);
  const outcome = await withStopProgress(target, manager, stopWaitMs(drain), 'restart', () =>
    manager.restart(stopWaitMs(drain), drain),
  );
  tell(outcome.notices);
  switch (outcome.kind) {
    case 'unit_restarted':
      say(
        `✓ Restarted ${outcome.unit} service${outcome.drained ? ' (running turns were drained first)' : ''}`,
      );
      say(statusHint(target));
      return;
    case 'replaced_by_supervisor':
      say(
        `✓ Restarted gateway for this profile (PID ${outcome.previousPid} → ${outcome.pid}, by its supervisor)`,
      );
      say(statusHint(target));
      return;
    case 'started':
      if (outcome.previousPid === null) {
        say('No gateway was running for this profile; starting one');
        return reportStarted(target, 'Started gateway for this profile', outcome);
      }
      return reportStarted(target, 'Restarted gateway for this profile', outcome, outcome.previousPid);
  }
}

// ---------------------------------------------------------------------------------------------
// install / uninstall

interface InstallOptions {
  system?: boolean;
  force?: boolean;
  runAsUser?: string;
  startNow?: boolean;
  skipChecks?: boolean;
}

/**
 * The doctor's offline checks (config parses, credentials present, permissions) on the gateway as
 * the unit will start it: the unit's own environment (HERMES_HOME, the drain timeout) plus the
 * home's `.env` — not this shell's variables, which the service never sees. A failure refuses the
 * install with one line and exit 78: such a unit would only exit 78 at start.
 */
function preflight(target: Target, skip: boolean | undefined): void {
  const env: NodeJS.ProcessEnv = { HERMES_HOME: target.root };
  const drain = process.env.HERMES_RESTART_DRAIN_TIMEOUT?.trim();
  if (drain) env.HERMES_RESTART_DRAIN_TIMEOUT = drain;
  let loaded: LoadedConfig;
  try {
    loadEnvFile(join(target.home, ENV_FILE_NAME), env);
    loaded = { ok: true, config: loadGatewayConfig({ home: target.home, env }) };
  } catch (error) {
    loaded = { ok: false, error: errorMessage(error) };
  }
  const failed = offlineChecks({ home: target.home, profile: target.profile, loaded }).find(
    (check) => check.status === 'fail',
  );
  if (!failed) return;
  if (skip) {
    warn(`warning: installing despite a failed check (--skip-checks): ${failed.name}: ${failed.detail}`);
    return;
  }
  throw new CliError(
    `refusing to install a unit that would fail at start: ${failed.name}: ${failed.detail}; fix: ${failed.fix} (then rerun, or see \`${hermesCommand(target, 'doctor')}\`)`,
    CONFIG_EXIT_CODE,
  );
}

async function installCommand(options: InstallOptions, command: Command): Promise<void> {
  if (options.runAsUser !== undefined && !options.system) {
    throw new CliError('--run-as-user only applies to a system service (--system)', 2);
  }
  const scope: ServiceScope = options.system ? 'system' : 'user';
  if (scope === 'system' && systemScopeNeedsRoot()) throw systemRootError('installing');
  const target = resolveTarget(command);
  preflight(target, options.skipChecks);
  const { config } = gatewayContext(command);
  const systemctl = new Systemctl(scope);
  const availability = systemctl.availability();
  if (!availability.available) {
    throw new CliError(
      `systemd is not available here (${availability.reason}); use \`${hermesCommand(target, 'gateway start')}\` to run a detached gateway instead`,
    );
  }
  let user: string | undefined;
  try {
    user = scope === 'system' ? resolveServiceUser(options.runAsUser, process.env) : undefined;
  } catch (error) {
    if (error instanceof InstallUsageError) throw new CliError(error.message, 2);
    throw error;
  }
  const plan = planInstall(target, {
    scope,
    user,
    drainSeconds: config.restartDrainTimeoutSeconds,
    drainFromEnv: process.env.HERMES_RESTART_DRAIN_TIMEOUT?.trim(),
  });
  if (plan.current !== undefined && plan.current !== plan.text && !options.force) {
    throw new CliError(
      `${plan.path} already exists and differs from the unit this install would write; pass --force to overwrite it`,
    );
  }
  const { written } = systemctlCall(() => applyInstall(plan, target.home, systemctl));
  say(written ? `✓ Wrote ${plan.path}` : `✓ ${plan.path} is up to date`);
  say(`✓ Enabled ${target.unit} (${scope} service${user ? `, runs as ${user}` : ''})`);
  if (scope === 'system' && user && user !== 'root' && !process.env.HERMES_HOME?.trim()) {
    say(
      `  note: it uses HERMES_HOME=${target.root}; set HERMES_HOME and reinstall if ${user} should use another home`,
    );
  }
  const startNow =
    options.startNow ?? (interactive() ? await confirm(`Start ${target.unit} now?`, true) : true);
  if (startNow) {
    systemctlCall(() => systemctl.check(['start', target.unit]));
    say(`✓ Started ${target.unit}`);
  } else {
    say(`  start it with: ${hermesCommand(target, `gateway start${scope === 'system' ? ' --system' : ''}`)}`);
  }
  say(statusHint(target));
  if (scope === 'user') {
    say('  tip: `loginctl enable-linger "$USER"` keeps user services running after you log out');
  }
  if (findLegacyUnits().some((unit) => unit.isGateway)) {
    say('  note: a legacy hermes.service unit is installed; remove it with `hermes gateway migrate-legacy`');
  }
}

async function uninstallCommand(
  options: { system?: boolean; yes?: boolean },
  command: Command,
): Promise<void> {
  const target = resolveTarget(command);
  const { scope } = chooseScope(target, options.system);
  if (scope === 'system' && systemScopeNeedsRoot()) throw systemRootError('removing');
  // Asked only when there is something to remove ("nothing to uninstall" needs no --yes).
  if (installedScopes(target.unit).includes(scope))
    await confirmIrreversible(`Removing the ${scope} unit ${target.unit}`, options);
  const outcome = systemctlCall(() => uninstallUnit(target, scope));
  if (outcome.kind === 'not_installed') {
    say(`✗ No ${outcome.unit} ${outcome.scope} unit installed (${outcome.path}); nothing to uninstall`);
    return;
  }
  tell(outcome.notices);
  if (outcome.stoppedByService) say(`✓ Stopped and disabled ${outcome.unit}`);
  say(`✓ Removed ${outcome.path}`);
}

// ---------------------------------------------------------------------------------------------
// connector install / uninstall (the same unit machinery, src/gateway/service/connector.ts)

interface ConnectorInstallOptions {
  system?: boolean;
  force?: boolean;
  runAsUser?: string;
  startNow?: boolean;
  envFile?: string;
}

async function connectorInstallCommand(options: ConnectorInstallOptions): Promise<void> {
  if (options.runAsUser !== undefined && !options.system) {
    throw new CliError('--run-as-user only applies to a system service (--system)', 2);
  }
  const scope: ServiceScope = options.system ? 'system' : 'user';
  if (scope === 'system' && systemScopeNeedsRoot()) throw systemRootError('installing');
  const flag = scope === 'system' ? ' --system' : '';
  const envFile = options.envFile?.trim() || defaultConnectorEnvFile(scope);
  const systemctl = new Systemctl(scope);
  const availability = systemctl.availability();
  if (!availability.available) {
    throw new CliError(
      `systemd is not available here (${availability.reason}); run \`hermes connector serve\` under your own supervisor instead`,
    );
  }
  let user: string | undefined;
  try {
    user = scope === 'system' ? resolveServiceUser(options.runAsUser, process.env) : undefined;
  } catch (error) {
    if (error instanceof InstallUsageError) throw new CliError(error.message, 2);
    throw error;
  }
  let prepared: ReturnType<typeof prepareConnectorEnvFile>;
  try {
    prepared = prepareConnectorEnvFile(envFile);
  } catch (error) {
    if (error instanceof ConnectorPreflightError)
      throw new CliError(
        `refusing to install a unit that would fail at start: ${error.message}; fix: ${error.fix}`,
        CONFIG_EXIT_CODE,
      );
    throw error;
  }
  if (prepared.created) say(`✓ Wrote ${envFile} (${prepared.keys.join(', ')}; mode 0600)`);
  else say(`✓ ${envFile} checked (settings accepted, mode 0600)`);
  const plan = planConnectorInstall({ scope, user, envFile, workingDirectory: process.cwd() });
  if (plan.current !== undefined && plan.current !== plan.text && !options.force) {
    throw new CliError(
      `${plan.path} already exists and differs from the unit this install would write; pass --force to overwrite it`,
    );
  }
  const { written } = systemctlCall(() => applyUnit(plan, systemctl));
  say(written ? `✓ Wrote ${plan.path}` : `✓ ${plan.path} is up to date`);
  say(
    `✓ Enabled ${plan.unit} (${scope} service${user ? `, runs as ${user}` : ''}; working directory ${plan.workingDirectory})`,
  );
  const startNow =
    options.startNow ?? (interactive() ? await confirm(`Start ${plan.unit} now?`, true) : true);
  if (startNow) {
    systemctlCall(() => systemctl.check(['start', plan.unit]));
    say(`✓ Started ${plan.unit}`);
  } else {
    say(`  start it with: systemctl${scope === 'user' ? ' --user' : ''} start ${plan.unit}`);
  }
  say(`  logs: journalctl${scope === 'user' ? ' --user' : ''} -u ${plan.unit} -f`);
  say(
    `  settings: ${envFile} (then \`hermes connector install${flag}\` to check them, and restart the unit)`,
  );
}

async function connectorUninstallCommand(options: { system?: boolean; yes?: boolean }): Promise<void> {
  // As for the gateway: --system, else the user unit, else an installed system unit.
  const installed = installedScopes(CONNECTOR_UNIT_NAME);
  const onlySystem = !installed.includes('user') && installed.includes('system');
  const scope: ServiceScope = options.system || onlySystem ? 'system' : 'user';
  if (scope === 'system' && systemScopeNeedsRoot()) throw systemRootError('removing');
  if (installed.includes(scope))
    await confirmIrreversible(`Removing the ${scope} unit ${CONNECTOR_UNIT_NAME}`, options);
  const outcome = systemctlCall(() => uninstallNamedUnit(CONNECTOR_UNIT_NAME, scope));
  if (outcome.kind === 'not_installed') {
    say(`✗ No ${outcome.unit} ${outcome.scope} unit installed (${outcome.path}); nothing to uninstall`);
    return;
  }
  tell(outcome.notices);
  if (outcome.stoppedByService) say(`✓ Stopped and disabled ${outcome.unit}`);
  say(`✓ Removed ${outcome.path} (its environment file is kept)`);
}

/** Add `install` and `uninstall` to the `connector` command. */
export function registerConnectorServiceCommands(connector: Command): void {
  connector
    .command('install')
    .description('install `hermes connector serve` as a systemd service (user unit by default)')
    .option('--system', 'install a system unit in /etc/systemd/system (needs root)')
    .option('--force', 'overwrite an existing unit that differs')
    .option('--run-as-user <user>', 'user a system unit runs as (default: $SUDO_USER; root only when named)')
    .option(
      '--env-file <path>',
      'settings file named by EnvironmentFile= (default ~/.config/hermes/connector.env; /etc/hermes/connector.env with --system)',
    )
    .option('--start-now', 'start the service right away (default; asked on a terminal)')
    .option('--no-start-now', 'only enable the service, do not start it')
    .addHelpText(
      'after',
      '\nA missing environment file is created (0600) from the RELAY_*, TELEGRAM_* and DISCORD_* variables of\n' +
        'this shell, RELAY_DB made absolute; an existing one is checked as `connector serve` reads it. A setting\n' +
        'serve would refuse stops the install (exit 78). The unit runs in this directory, restarts on failure,\n' +
        'and has RestartPreventExitStatus=78: a configuration error at start is not retried.',
    )
    .action((options: ConnectorInstallOptions) => serviceCall(() => connectorInstallCommand(options)));

  connector
    .command('uninstall')
    .description('stop, disable and remove the connector’s systemd unit (the environment file stays)')
    .option('--system', 'act on the system unit')
    .option('-y, --yes', 'do not ask (required when input is not a terminal)')
    .addHelpText(
      'after',
      '\nOn a terminal it asks first; elsewhere it refuses (exit 2) unless --yes is given.',
    )
    .action((options: { system?: boolean; yes?: boolean }) =>
      serviceCall(() => connectorUninstallCommand(options)),
    );
}

// ---------------------------------------------------------------------------------------------
// list

function listCommand(options: { json?: boolean }): void {
  let root: string;
  try {
    root = resolveHermesRoot(process.env);
  } catch (error) {
    throw new CliError(errorMessage(error), 2);
  }
  const states = listProfileHomes(root).map((entry) => profileState(entry));
  if (options.json) {
    printJson(states);
    return;
  }
  printTable(
    states.map((state) => ({
      profile: state.profile,
      running: state.running,
      pid: state.pid,
      state: state.gateway_state ?? (state.running ? 'unknown' : 'never started'),
      active: state.active_agents,
      service: state.installed.length > 0 ? `${state.unit} (${state.installed.join('+')})` : '',
      home: state.home,
    })),
    ['profile', 'running', 'pid', 'state', 'active', 'service', 'home'],
  );
}

// ---------------------------------------------------------------------------------------------
// setup

interface SetupOptions {
  relayUrl?: string;
  agent?: AgentKind;
  model?: string;
  baseUrl?: string;
  command?: string;
  yes?: boolean;
}

async function askValid(
  prompter: Prompter,
  question: string,
  fallback: string | undefined,
  problem: (value: string) => string | undefined,
): Promise<string> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const answer =
      (await prompter.ask(`${question}${fallback ? ` [${fallback}]` : ''}: `)).trim() || fallback || '';
    const issue = answer === '' ? 'a value is required' : problem(answer);
    if (!issue) return answer;
    say(`  ${issue}`);
  }
  throw new CliError('too many invalid answers; nothing was written', 2);
}

/** The interactive part of setup: one question per missing value, defaults in brackets. */
async function askSetupValues(
  prompter: Prompter,
  target: Target,
  options: SetupOptions,
  existing: ExistingSettings,
): Promise<SetupValues> {
  const existingAgent = existing.agent && isAgentKind(existing.agent) ? existing.agent : undefined;
  say(`Setting up the gateway in ${target.home} (Enter keeps the value in brackets)`);
  const relayUrl =
    options.relayUrl ??
    (await askValid(
      prompter,
      'Relay (connector) URL',
      existing.relayUrl ?? DEFAULT_SETUP_RELAY_URL,
      (value) => relayUrlProblem(value),
    ));
  const agent = (options.agent ??
    (await askValid(prompter, `Agent (${AGENT_KINDS.join('/')})`, existingAgent ?? 'echo', (value) =>
      isAgentKind(value) ? undefined : `choose one of ${AGENT_KINDS.join(', ')}`,
    ))) as AgentKind;
  const values: SetupValues = {
    relayUrl,
    agent,
    model: options.model,
    baseUrl: options.baseUrl,
    command: options.command,
  };
  if (agent === 'openai') {
    values.model ??= await askValid(prompter, 'Model', existing.model ?? DEFAULT_MODEL, () => undefined);
    values.baseUrl ??= await askValid(
      prompter,
      'OpenAI-compatible base URL',
      existing.baseUrl ?? DEFAULT_OPENAI_BASE_URL,
      (value) => httpUrlProblem(value),
    );
    const key = await prompter.ask(`API key${existing.apiKeySet ? ' (Enter keeps the current one)' : ''}: `, {
      secret: true,
    });
    if (key.trim()) values.apiKey = key.trim();
  }
  if (agent === 'command') {
    values.command ??= await askValid(prompter, 'Command to run per turn', existing.command, () => undefined);
  }
  return values;
}

async function setupCommand(options: SetupOptions, command: Command): Promise<void> {
  const target = resolveTarget(command);
  if (options.relayUrl !== undefined) {
    const issue = relayUrlProblem(options.relayUrl);
    if (issue) throw new CliError(`--relay-url: ${issue}`, 2);
  }
  if (options.baseUrl !== undefined) {
    const issue = httpUrlProblem(options.baseUrl);
    if (issue) throw new CliError(`--base-url: ${issue}`, 2);
  }
  const existing = readExistingSettings(target.home);
  const existingAgent = existing.agent && isAgentKind(existing.agent) ? existing.agent : undefined;
  const allGiven =
    options.relayUrl !== undefined &&
    options.agent !== undefined &&
    (options.agent !== 'command' || options.command !== undefined);
  const prompting = !options.yes && !allGiven && interactive();

  let values: SetupValues;
  if (prompting) {
    const prompter = new Prompter();
    try {
      values = await askSetupValues(prompter, target, options, existing);
    } finally {
      prompter.close();
    }
  } else {
    const agent = options.agent ?? existingAgent ?? 'echo';
    const commandLine = options.command ?? (agent === 'command' ? existing.command : undefined);
    if (agent === 'command' && !commandLine?.trim()) {
      throw new CliError('--agent command needs --command "<program to run per turn>"', 2);
    }
    values = {
      relayUrl: options.relayUrl ?? existing.relayUrl ?? DEFAULT_SETUP_RELAY_URL,
      agent,
      model: options.model,
      baseUrl: options.baseUrl,
      command: commandLine,
      apiKey: agent === 'openai' ? process.env.OPENAI_API_KEY?.trim() || undefined : undefined,
    };
  }

  const envRelayUrl = process.env.GATEWAY_RELAY_URL?.trim();
  let result: ReturnType<typeof writeSetup>;
  try {
    ensureHome(target.home);
    result = writeSetup(target.home, values);
  } catch (error) {
    if (error instanceof SetupError) throw new CliError(error.message);
    throw error;
  }
  say(`✓ Wrote ${result.configPath} (${result.configKeys.join(', ')})`);
  say(`✓ Wrote ${result.envPath} (${result.envKeys.join(', ')}; mode 0600)`);
  if (result.removedEnvKeys.length > 0) {
    say(`  removed ${result.removedEnvKeys.join(', ')} from .env: config.yaml holds it now`);
  }
  if (values.apiKey && !prompting)
    say('  OPENAI_API_KEY was taken from the environment and stored in .env only');
  if (envRelayUrl && envRelayUrl !== values.relayUrl.trim()) {
    warn('warning: GATEWAY_RELAY_URL in your environment overrides gateway.relay_url from config.yaml');
  }
  if (values.agent === 'openai' && !values.apiKey && !existing.apiKeySet) {
    warn(`warning: no API key yet: add OPENAI_API_KEY=… to ${result.envPath} (never to config.yaml)`);
  }
  say('Next:');
  if (!existing.enrolled) say(`  ${hermesCommand(target, 'gateway enroll --token <enrollment token>')}`);
  say(
    `  ${hermesCommand(target, 'gateway install')}   (systemd service)  or  ${hermesCommand(target, 'gateway start')}`,
  );
}

// ---------------------------------------------------------------------------------------------
// migrate-legacy

async function migrateLegacyCommand(options: {
  dryRun?: boolean;
  yes?: boolean;
  json?: boolean;
}): Promise<void> {
  const found = findLegacyUnits();
  const candidates = found.filter((unit) => unit.isGateway);
  const skipped = found.filter((unit) => !unit.isGateway);
  const report = (removed: LegacyUnit[]) =>
    printJson({
      dry_run: options.dryRun ?? false,
      found: found.map((unit) => ({
        scope: unit.scope,
        path: unit.path,
        exec_start: unit.execStart ?? null,
        is_gateway: unit.isGateway,
      })),
      removed: removed.map((unit) => unit.path),
    });
  const log = options.json ? () => undefined : say;
  if (candidates.length === 0) {
    if (options.json) return report([]);
    say('No legacy hermes.service gateway units found');
    for (const unit of skipped) say(`  left alone: ${unit.path} (does not run a hermes gateway)`);
    return;
  }
  log('Legacy gateway units:');
  for (const unit of candidates)
    log(`  ${unit.scope.padEnd(6)} ${unit.path}  (ExecStart=${unit.execStart ?? '?'})`);
  for (const unit of skipped) log(`  left alone: ${unit.path} (does not run a hermes gateway)`);
  if (options.dryRun) {
    if (options.json) return report([]);
    say('dry run: nothing removed');
    return;
  }
  if (!options.yes) {
    if (!interactive()) {
      throw new CliError(
        'refusing to remove units without confirmation: rerun with -y (or --dry-run to only list them)',
      );
    }
    if (!(await confirm(`Remove ${candidates.length} legacy unit(s)?`, false))) {
      say('Nothing removed');
      return;
    }
  }
  if (candidates.some((unit) => unit.scope === 'system') && systemScopeNeedsRoot())
    throw systemRootError('removing');
  const removed: LegacyUnit[] = [];
  for (const unit of candidates) {
    const systemctl = new Systemctl(unit.scope);
    const availability = systemctl.availability();
    if (availability.available) tell(systemctlCall(() => removeUnit(systemctl, unit.name, unit.path)));
    else removeFile(unit.path);
    removed.push(unit);
    log(`✓ Removed ${unit.path}`);
  }
  if (options.json) report(removed);
}

// ---------------------------------------------------------------------------------------------

/** Add install|uninstall|start|stop|restart|list|setup|migrate-legacy to the `gateway` command. */
export function registerGatewayServiceCommands(gateway: Command): void {
  gateway
    .command('install')
    .description('install the gateway as a systemd service (user unit by default)')
    .option('--system', 'install a system unit in /etc/systemd/system (needs root)')
    .option('--force', 'overwrite an existing unit that differs')
    .option('--run-as-user <user>', 'user a system unit runs as (default: $SUDO_USER; root only when named)')
    .option('--start-now', 'start the service right away (default; asked on a terminal)')
    .option('--no-start-now', 'only enable the service, do not start it')
    .option('--skip-checks', 'install even when the configuration checks fail (not recommended)')
    .addHelpText(
      'after',
      '\nFirst checks the configuration as the service will see it (config.yaml and .env of the home,\nnot this shell): config parses, credentials present, permissions. A failure refuses the install\n(exit 78). The unit has RestartPreventExitStatus=78: a configuration error at start is not retried.',
    )
    .action((options: InstallOptions, command: Command) =>
      serviceCall(() => installCommand(options, command)),
    );

  gateway
    .command('uninstall')
    .description('stop, disable and remove the systemd unit of this profile')
    .option('--system', 'act on the system unit')
    .option('-y, --yes', 'do not ask (required when input is not a terminal)')
    .addHelpText(
      'after',
      '\nOn a terminal it asks first; elsewhere it refuses (exit 2) unless --yes is given.',
    )
    .action((options: { system?: boolean; yes?: boolean }, command: Command) =>
      serviceCall(() => uninstallCommand(options, command)),
    );

  gateway
    .command('start')
    .description('start the gateway: the systemd service if installed, else a detached process')
    .option('--system', 'act on the system unit')
    .addHelpText(
      'after',
      '\nWithout systemd (or without an installed unit) the gateway runs detached; its output goes to\n$HERMES_HOME/logs/gateway.log.',
    )
    .action((options: { system?: boolean }, command: Command) =>
      serviceCall(() => startCommand(options, command)),
    );

  gateway
    .command('stop')
    .description('stop the gateway after its running turns finish (planned stop, exit 0)')
    .option('--system', 'act on the system unit')
    .addHelpText(
      'after',
      '\nWaits up to the drain timeout + 15 s (agent.restart_drain_timeout), then SIGKILLs.',
    )
    .action((options: { system?: boolean }, command: Command) =>
      serviceCall(() => stopCommand(options, command)),
    );

  gateway
    .command('idle')
    .description('scale to zero: stop after running turns finish, the connector keeping new messages')
    .option('--system', 'act on the system unit')
    .addHelpText(
      'after',
      '\nThe gateway says going_idle before it exits; messages that arrive meanwhile wait in the\nconnector, which pokes the wake URL registered at enroll or provision (GATEWAY_RELAY_WAKE_URL).',
    )
    .action((options: { system?: boolean }, command: Command) =>
      serviceCall(() => idleCommand(options, command)),
    );

  gateway
    .command('restart')
    .description('drain-aware restart: SIGUSR1, wait for running turns, then start again')
    .option('--system', 'act on the system unit')
    .addHelpText(
      'after',
      '\nFalls back to `systemctl restart` (or SIGKILL without systemd) after the drain timeout + 15 s.',
    )
    .action((options: { system?: boolean }, command: Command) =>
      serviceCall(() => restartCommand(options, command)),
    );

  gateway
    .command('list')
    .description('every profile (the root home and $HERMES_HOME/profiles/*) with its gateway state')
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }) => listCommand(options));

  gateway
    .command('setup')
    .description('write config.yaml (and secrets to .env) for this profile; asks on a terminal')
    .option('--relay-url <url>', 'connector URL (gateway.relay_url)')
    .addOption(new Option('--agent <kind>', 'agent that answers turns').choices([...AGENT_KINDS]))
    .option('--model <model>', 'model for the openai agent (agent.model)')
    .option('--base-url <url>', 'OpenAI-compatible base URL (openai agent)')
    .option('--command <command>', 'program run per turn (command agent)')
    .option('-y, --yes', 'do not ask; use flags, current values and defaults')
    .addHelpText(
      'after',
      '\nAPI keys are asked for (or taken from $OPENAI_API_KEY) and stored only in $HERMES_HOME/.env (0600).',
    )
    .action((options: SetupOptions, command: Command) => serviceCall(() => setupCommand(options, command)));

  gateway
    .command('migrate-legacy')
    .description('remove pre-rename hermes.service units (never touches hermes-gateway* units)')
    .option('--dry-run', 'only list what would be removed')
    .option('-y, --yes', 'remove without asking')
    .option('--json', 'print JSON')
    .action((options: { dryRun?: boolean; yes?: boolean; json?: boolean }) =>
      serviceCall(() => migrateLegacyCommand(options)),
    );
}
