import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { generateToken } from '../auth/secrets.js';
import { errorMessage } from '../common/errors.js';
import { parsePrivateTargets } from '../common/ssrf.js';
import { addRoute, createEnrollmentToken, createTenant, issueTenantToken } from '../connector/admin.js';
import { SqliteStore } from '../connector/store/sqlite.js';
import { enrollGateway } from '../gateway/enroll.js';
import { writeFileAtomic } from '../home/atomic-file.js';
import { ENV_FILE_NAME, parseEnvFile, saveEnvValues } from '../home/env-file.js';
import { readRuntimeStatus } from '../home/status-file.js';
import { CliError } from './errors.js';

/**
 * `hermes demo` (what `npm start` runs): a connector, a really enrolled gateway receiving signed
 * deliveries, the dashboard and the web chat on 127.0.0.1, as one supervised process tree with a
 * progress line per step. A second run reuses the data dir.
 */

const TENANT = 'demo';
const ROOM = 'demo';
const GATEWAY_ID = 'gw-demo';
const DEFAULT_PORTS = { connector: 8700, inbound: 8701, dashboard: 9119 };
const CLI = process.argv[1] ?? '';

interface DemoOptions {
  dataDir: string;
  portBase?: string;
}

interface Child {
  name: string;
  process: ChildProcess;
  log: string;
  exited: Promise<number | null>;
}

const out = (line: string) => process.stdout.write(`${line}\n`);
const step = (n: number, total: number, text: string) => out(`[${n}/${total}] ${text}`);

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run connector + gateway + dashboard + web chat on 127.0.0.1 (what `npm start` runs)')
    .option(
      '--data-dir <dir>',
      'where the demo keeps its database, gateway home and logs',
      './relay-data/demo',
    )
    .option(
      '--port-base <port>',
      `first of the ports to use: connector, then gateway receiver, then dashboard (default ${DEFAULT_PORTS.connector}, ${DEFAULT_PORTS.inbound}, ${DEFAULT_PORTS.dashboard})`,
    )
    .addHelpText(
      'after',
      '\nExamples:\n  npm start\n  npm start -- --port-base 18700\n  HERMES_AGENT=openai OPENAI_BASE_URL=http://localhost:11434/v1 HERMES_MODEL=llama3.2 npm start\n',
    )
    .action((options: DemoOptions) => runDemo(options));
}

async function runDemo(options: DemoOptions): Promise<void> {
  const ports = choosePorts(options.portBase);
  const dataDir = resolve(options.dataDir);
  const shown = relative(process.cwd(), dataDir) || '.';
  const home = join(dataDir, 'gateway-home');
  const logs = join(dataDir, 'logs');
  const db = join(dataDir, 'connector.db');
  const total = 5;
  out('hermes-relay demo: connector + gateway + dashboard + web chat on 127.0.0.1');

  step(1, total, 'checking ports');
  for (const [name, port] of Object.entries(ports)) {
    if (!(await portFree(port))) {
      throw new CliError(
        `port ${port} (${name}) on 127.0.0.1 is already in use — is another demo running? Stop it, or pick other ports: npm start -- --port-base ${ports.connector + 1000}`,
      );
    }
  }
  mkdirSync(logs, { recursive: true, mode: 0o700 });
  mkdirSync(home, { recursive: true, mode: 0o700 });

  step(2, total, `preparing tenant "${TENANT}" and web-chat room "${ROOM}" in ${shown}`);
  const firstRun = !existsSync(db);
  const tenantToken = await prepareTenant(dataDir, db, ports.inbound);
  const adminTokenFile = ensureAdminToken(dataDir);

  const children: Child[] = [];
  let stopping = false;
  const stopAll = async () => {
    stopping = true;
    for (const child of [...children].reverse())
      await stopChild(child, child.name === 'gateway' ? 'SIGINT' : 'SIGTERM');
  };

  try {
    step(3, total, `starting the connector on http://127.0.0.1:${ports.connector}`);
    const connector = spawnHermes(
      'connector',
      ['connector', 'serve', '--port', String(ports.connector), '--db', db],
      logs,
      {
        RELAY_LOG_LEVEL: process.env.RELAY_LOG_LEVEL ?? 'info',
        // The demo gateway's receiver is on this machine: loopback is the one private target allowed.
        RELAY_ALLOW_PRIVATE_TARGETS: DEMO_PRIVATE_TARGETS,
        RELAY_ADMIN_TOKEN: undefined,
        RELAY_ADMIN_TOKEN_FILE: adminTokenFile,
      },
    );
    children.push(connector);
    await waitForLog(connector, /connector listening on/, 20_000);

    step(
      4,
      total,
      firstRun ? `enrolling gateway ${GATEWAY_ID} through /relay/enroll` : `starting gateway ${GATEWAY_ID}`,
    );
    await ensureEnrolled(home, db, ports.connector, tenantToken);
    const drainTimeout = process.env.HERMES_RESTART_DRAIN_TIMEOUT ?? '30';
    const relay = {
      GATEWAY_RELAY_URL: `ws://127.0.0.1:${ports.connector}/relay`,
      GATEWAY_RELAY_INBOUND_HOST: '127.0.0.1',
      GATEWAY_RELAY_INBOUND_PORT: String(ports.inbound),
    };
    // Kept in the home's .env too (this run's ports), so `hermes doctor` and `hermes gateway status`
    // pointed at the demo's gateway home see the same relay as the running gateway.
    saveEnvValues(join(home, ENV_FILE_NAME), relay);
    const gatewayEnv = {
      HERMES_HOME: home,
      ...relay,
      HERMES_RESTART_DRAIN_TIMEOUT: drainTimeout,
      // Fronting Discord too: a second identity, whose hello declares the agent's slash commands.
      ...(discordConfigured()
        ? {
            GATEWAY_RELAY_PLATFORMS: 'webchat,discord',
            GATEWAY_RELAY_BOT_IDS: JSON.stringify({
              discord: { botId: process.env.DISCORD_APPLICATION_ID?.trim() ?? '' },
            }),
          }
        : {}),
    };
    let gateway = spawnHermes('gateway', ['gateway', 'run', '--replace'], logs, gatewayEnv);
    children.push(gateway);
    await waitForLog(gateway, /gateway running for/, 20_000);
    await waitFor(
      () => readRuntimeStatus(home)?.platforms.relay?.state === 'connected',
      20_000,
      'the gateway to connect to the connector',
      gateway,
    );

    step(5, total, `starting the dashboard on http://127.0.0.1:${ports.dashboard}`);
    const sessionToken = randomBytes(32).toString('base64url');
    const dashboard = spawnHermes('dashboard', ['dashboard', '--port', String(ports.dashboard)], logs, {
      HERMES_HOME: home,
      HERMES_DASHBOARD_SESSION_TOKEN: sessionToken,
      HERMES_RESTART_DRAIN_TIMEOUT: drainTimeout,
    });
    children.push(dashboard);
    await waitForLog(dashboard, /dashboard on/, 20_000);

    const agent = process.env.HERMES_AGENT ?? 'echo';
    out('');
    out('✓ hermes-relay is running');
    out(
      `  Web chat:   http://127.0.0.1:${ports.connector}/chat/${ROOM}     ← say hello; try "/slow 5 hi" then "/stop", "/image", "/ask Ship it?", or drop a file`,
    );
    out(
      `  Dashboard:  http://127.0.0.1:${ports.dashboard}/          ← gateway state, active turns, Drain / Restart`,
    );
    out(`              API session token (header X-Hermes-Session-Token): ${sessionToken}`);
    out(
      `  Admin:      http://127.0.0.1:${ports.connector}/admin     ← tenants, gateways, outbox, dead letters; token: cat ${relative(process.cwd(), adminTokenFile)}`,
    );
    out(
      `  Agent:      ${agent}${agent === 'echo' ? ' (replies "echo: …"; for a model: HERMES_AGENT=openai OPENAI_BASE_URL=… HERMES_MODEL=… npm start)' : ''}`,
    );
    if (discordConfigured())
      out(
        `  Discord:    the bot answers in every server it is in and in DMs; interactions endpoint http://127.0.0.1:${ports.connector}/discord/interactions (Discord needs it public over https: see docs/discord.md)`,
      );
    out(`  Data:       ${shown} (logs in ${relative(process.cwd(), logs) || logs})`);
    out('Press Ctrl-C to stop; running turns finish first.');

    // Supervise: a gateway exiting 75 asked for a restart (dashboard Restart, SIGUSR1); anything
    // else ending early is a failure worth stopping for.
    const exitCode = await new Promise<number>((resolveExit) => {
      const onSignal = (signal: string) => {
        if (stopping) return;
        out(`\n${signal}: stopping (the gateway drains running turns first)…`);
        void stopAll().then(() => resolveExit(0));
      };
      process.once('SIGINT', () => onSignal('SIGINT'));
      process.once('SIGTERM', () => onSignal('SIGTERM'));
      const watch = (child: Child) => {
        void child.exited.then(async (code) => {
          if (stopping) return;
          if (child.name === 'gateway' && code === 75) {
            out('gateway restart requested: starting it again…');
            gateway = spawnHermes('gateway', ['gateway', 'run', '--replace'], logs, gatewayEnv);
            children.splice(children.indexOf(child), 1, gateway);
            watch(gateway);
            return;
          }
          out(`✗ the ${child.name} exited unexpectedly (code ${code}); see ${child.log}`);
          await stopAll();
          resolveExit(1);
        });
      };
      for (const child of children) watch(child);
    });
    out(exitCode === 0 ? 'stopped.' : 'stopped after a failure.');
    process.exitCode = exitCode;
  } catch (error) {
    await stopAll();
    throw error instanceof CliError ? error : new CliError(errorMessage(error));
  }
}

/** `DISCORD_BOT_TOKEN` set: the connector fronts Discord too (it checks the rest of the settings). */
function discordConfigured(): boolean {
  return Boolean(process.env.DISCORD_BOT_TOKEN?.trim());
}

function choosePorts(portBase: string | undefined): typeof DEFAULT_PORTS {
  if (portBase === undefined) return DEFAULT_PORTS;
  const base = Number(portBase);
  if (!Number.isInteger(base) || base < 1024 || base > 65533)
    throw new CliError('--port-base must be a port from 1024 to 65533', 2);
  return { connector: base, inbound: base + 1, dashboard: base + 2 };
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolvePort) => {
    const server = createServer();
    server.once('error', () => resolvePort(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolvePort(true)));
  });
}

/** Everything the demo runs listens on 127.0.0.1 (RELAY_ALLOW_PRIVATE_TARGETS for its connector). */
const DEMO_PRIVATE_TARGETS = '127.0.0.1/32';

/** Tenant, its access token (kept 0600 in the data dir so re-runs can enroll), and the room route. */
async function prepareTenant(dataDir: string, db: string, inboundPort: number): Promise<string> {
  const secretsFile = join(dataDir, 'demo-secrets.json');
  const store = SqliteStore.open(db);
  try {
    let token: string | undefined;
    const tenant = await store.findTenantByName(TENANT);
    if (!tenant) {
      token = (await createTenant(store, TENANT)).accessToken;
    } else if (existsSync(secretsFile)) {
      token = (JSON.parse(readFileSync(secretsFile, 'utf8')) as { tenantToken?: string }).tenantToken;
    }
    token ??= (await issueTenantToken(store, TENANT)).accessToken;
    writeFileAtomic(secretsFile, JSON.stringify({ tenantToken: token }), 0o600);
    await addRoute(store, {
      tenantRef: TENANT,
      platform: 'webchat',
      routeKey: ROOM,
      endpoint: `http://127.0.0.1:${inboundPort}`,
      gatewayId: GATEWAY_ID,
      allowPrivateTargets: parsePrivateTargets(DEMO_PRIVATE_TARGETS),
    });
    if (discordConfigured()) {
      // Every server and DM of the bot reaches the demo agent, over its socket (Discord's
      // interactions need the current generation: no endpoint).
      await addRoute(store, { tenantRef: TENANT, platform: 'discord', routeKey: '*', gatewayId: GATEWAY_ID });
    }
    return token;
  } finally {
    await store.close();
  }
}

/** Enroll through the running connector unless this home already holds valid credentials. */
async function ensureEnrolled(
  home: string,
  db: string,
  connectorPort: number,
  tenantToken: string,
): Promise<void> {
  const envFile = join(home, ENV_FILE_NAME);
  const saved = existsSync(envFile) ? parseEnvFile(readFileSync(envFile, 'utf8')) : {};
  const store = SqliteStore.open(db);
  try {
    const record = await store.getGateway(GATEWAY_ID);
    if (record && !record.revoked && saved.GATEWAY_RELAY_SECRET === record.secret) {
      out(`      reusing the credentials in ${relative(process.cwd(), envFile)}`);
      return;
    }
    if (record?.revoked)
      throw new CliError(`gateway ${GATEWAY_ID} was revoked; delete the demo data dir to start over`);
    const { token } = await createEnrollmentToken(store, TENANT, 10 * 60_000);
    const result = await enrollGateway({
      connectorUrl: `http://127.0.0.1:${connectorPort}`,
      token,
      gatewayId: GATEWAY_ID,
      portalToken: tenantToken,
    });
    if (!result.ok) throw new CliError(`enrollment failed: ${result.message}`);
    saveEnvValues(envFile, {
      GATEWAY_RELAY_ID: result.gatewayId,
      GATEWAY_RELAY_SECRET: result.secret,
      GATEWAY_RELAY_DELIVERY_KEY: result.deliveryKey,
    });
    out(`      enrolled; credentials written to ${relative(process.cwd(), envFile)} (mode 0600)`);
  } finally {
    await store.close();
  }
}

/** The demo connector's admin console token: made once, kept 0600 beside its database. */
function ensureAdminToken(dataDir: string): string {
  const file = join(dataDir, 'admin-token');
  if (!existsSync(file) || readFileSync(file, 'utf8').trim() === '')
    writeFileAtomic(file, `${generateToken('hra_')}\n`);
  return file;
}

function spawnHermes(name: string, args: string[], logs: string, env: NodeJS.ProcessEnv): Child {
  const log = join(logs, `${name}.log`);
  const fd = openSync(log, 'a', 0o600);
  // Own process group: Ctrl-C reaches only the demo, which stops the children in order (gateway
  // first, so running turns finish while the connector is still up). The IPC channel lets a
  // child notice when the demo itself dies, so none is left orphaned holding a port.
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', fd, 'ipc'],
    detached: true,
  });
  let buffer = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffer = (buffer + chunk.toString('utf8')).slice(-64 * 1024);
    child.emit('hermes-output', buffer);
  });
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));
  return { name, process: child, log, exited };
}

function waitForLog(child: Child, pattern: RegExp, timeoutMs: number): Promise<void> {
  return new Promise((resolveWait, reject) => {
    const timer = setTimeout(
      () =>
        reject(new Error(`the ${child.name} did not start within ${timeoutMs / 1000} s; see ${child.log}`)),
      timeoutMs,
    );
    const onOutput = (text: string) => {
      if (!pattern.test(text)) return;
      clearTimeout(timer);
      child.process.off('hermes-output', onOutput);
      resolveWait();
    };
    child.process.on('hermes-output', onOutput);
    void child.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the ${child.name} exited during startup (code ${code}); see ${child.log}`));
    });
  });
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string, child: Child): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}; see ${child.log}`);
    await sleep(100);
  }
}

async function stopChild(child: Child, signal: NodeJS.Signals): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return;
  child.process.kill(signal);
  const timer = setTimeout(() => child.process.kill('SIGKILL'), 60_000);
  await child.exited;
  clearTimeout(timer);
}
