import type { Command } from 'commander';
import { errorMessage } from '../common/errors.js';
import { type CheckResult, type DoctorReport, type LoadedConfig, runDoctor } from '../gateway/doctor.js';
import { resolveHome } from '../home/home.js';
import { CliError } from './errors.js';
import { printJson } from './format.js';
import { gatewayContext } from './gateway-commands.js';

/**
 * `hermes doctor [--json] [--connector-url URL]`: the checks of src/gateway/doctor.ts for the
 * gateway home the global `--profile` / `HERMES_HOME` name, rendered one line each. Exit 0 when
 * nothing failed, 1 otherwise (warnings do not fail).
 */

interface GlobalOptions {
  profile?: string;
}

const MARKS: Record<CheckResult['status'], string> = { ok: '✓', warn: '!', fail: '✗' };

/** One line per check (mark, name, finding), the fix indented under it, then a summary line. */
export function renderDoctorReport(home: string, report: DoctorReport): string[] {
  const width = Math.max(...report.checks.map((check) => check.name.length));
  const lines = [`hermes doctor: ${home}`];
  for (const check of report.checks) {
    lines.push(`${MARKS[check.status]} ${check.name.padEnd(width)}  ${check.detail}`);
    if (check.fix) lines.push(`    fix: ${check.fix}`);
  }
  const failed = report.checks.filter((check) => check.status === 'fail').length;
  const warned = report.checks.filter((check) => check.status === 'warn').length;
  const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`;
  lines.push(
    failed === 0
      ? `all ${report.checks.length} checks passed${warned ? ` (${plural(warned, 'warning')})` : ''}`
      : `${plural(failed, 'check')} failed${warned ? `, ${plural(warned, 'warning')}` : ''}`,
  );
  return lines;
}

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('check this gateway home end to end and say how to fix what is wrong')
    .option('--json', 'print {ok, checks:[{name, status, detail, fix?}]}')
    .option(
      '--connector-url <url>',
      'connector to check against (default: GATEWAY_RELAY_URL / gateway.relay_url)',
    )
    .addHelpText(
      'after',
      '\nChecks: node, native-module, config, stores, ports, permissions, credentials, connector-auth\n' +
        '(a real authenticated dial of /relay), inbound (a signed no-op self-delivery), clock, service.\n' +
        'Exit 0 when nothing failed, 1 otherwise; warnings do not fail.',
    )
    .action(async (options: { json?: boolean; connectorUrl?: string }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      let resolved: ReturnType<typeof resolveHome>;
      try {
        resolved = resolveHome({ env: process.env, profile: globals.profile });
      } catch (error) {
        throw new CliError(errorMessage(error), 2);
      }
      const connectorUrl = options.connectorUrl?.trim();
      if (connectorUrl !== undefined && !/^(wss?|https?):\/\/[^/\s]+/i.test(connectorUrl))
        throw new CliError(
          `--connector-url must be a ws(s):// or http(s):// URL, got ${JSON.stringify(connectorUrl)}`,
          2,
        );
      let loaded: LoadedConfig;
      try {
        loaded = { ok: true, config: gatewayContext(command).config };
      } catch (error) {
        if (error instanceof CliError && error.exitCode === 2) throw error;
        loaded = { ok: false, error: errorMessage(error) };
      }
      const report = await runDoctor({
        home: resolved.home,
        profile: resolved.profile,
        loaded,
        connectorUrl,
      });
      if (options.json) printJson(report);
      else process.stdout.write(`${renderDoctorReport(resolved.home, report).join('\n')}\n`);
      process.exitCode = report.ok ? 0 : 1;
    });
}
