#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { errorMessage } from '../common/errors.js';
import { registerCompletionCommand } from './completion.js';
import { registerConnectorCommands } from './connector-commands.js';
import { registerDashboardCommands } from './dashboard-commands.js';
import { registerDemoCommand } from './demo.js';
import { registerDoctorCommand } from './doctor-commands.js';
import { CliError } from './errors.js';
import { applyExamples } from './examples.js';
import { printJson } from './format.js';
import { registerGatewayCommands } from './gateway-commands.js';
import { configureLogging, redactUrlsIn } from './logger.js';
import { registerProxyCommands } from './proxy-commands.js';
import { VERSION, versionInfo } from './version.js';

/** The whole `hermes` command tree, built without running anything (tests walk it). */
export function buildProgram(): Command {
  const program: Command = new Command('hermes')
    .description('hermes-relay: connect AI agents to chat platforms through an authenticated relay')
    .version(VERSION, '-V, --version')
    .option('-v, --verbose', 'show stack traces and debug logs')
    .option('-p, --profile <name>', 'use the profile home $HERMES_HOME/profiles/<name>')
    .option('--log-level <level>', 'log level of every part (default $HERMES_LOG_LEVEL or info)')
    .option('--log-format <format>', 'auto (pretty on a terminal, else JSON), json or pretty')
    .hook('preAction', () => {
      const { logLevel, logFormat } = program.opts<{ logLevel?: string; logFormat?: string }>();
      configureLogging({ level: logLevel, format: logFormat });
      // Processes this one starts (demo children, a detached gateway) log at the same level.
      if (logLevel) process.env.HERMES_LOG_LEVEL = logLevel.trim().toLowerCase();
    })
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  registerConnectorCommands(program);
  registerGatewayCommands(program);
  registerDoctorCommand(program);
  registerDashboardCommands(program);
  registerDemoCommand(program);
  registerProxyCommands(program);

  program
    .command('version')
    .description('print the version of hermes-relay, Node, the platform and the architecture')
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }) => {
      const info = versionInfo();
      if (options.json) return printJson(info);
      process.stdout.write(
        `${info.name} ${info.version} (node ${info.node}, ${info.platform}-${info.arch})\n`,
      );
    });
  registerCompletionCommand(program);
  applyExamples(program);
  return program;
}

const program = buildProgram();

async function main(argv: string[]): Promise<number> {
  try {
    await program.parseAsync(argv);
    // Long-running commands report their own exit code (e.g. 75 for a restart).
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are "errors" to commander; they already printed what they had to.
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return 0;
      if (error.code === 'commander.help') return 0;
      return 2;
    }
    if (error instanceof CliError) {
      process.stderr.write(`hermes: ${redactUrlsIn(error.message)}\n`);
      return error.exitCode;
    }
    const verbose = program.opts<{ verbose?: boolean }>().verbose;
    // A URL with a password in it (a Postgres or Redis URL) never reaches the terminal in clear.
    const message = redactUrlsIn(errorMessage(error));
    process.stderr.write(`hermes: ${message}\n`);
    if (verbose && error instanceof Error && error.stack)
      process.stderr.write(`${redactUrlsIn(error.stack)}\n`);
    return 1;
  }
}

/** This module is the `hermes` binary (not imported by a test that only builds the tree). */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // Started by `hermes demo` (an IPC channel): stop cleanly if the demo process goes away.
  if (process.channel) {
    process.channel.unref();
    process.once('disconnect', () => process.kill(process.pid, 'SIGINT'));
  }
  // A closed stdout (the reader died) must not crash a server mid-drain.
  process.stdout.on('error', () => undefined);

  const code = await main(process.argv);
  process.exitCode = code;
  // Servers have closed their handles by now; a stray one (a dangling socket) must not keep the
  // process alive after its work is done. Unref'd, so a clean exit is not delayed.
  setTimeout(() => process.exit(code), 2_000).unref();
}
