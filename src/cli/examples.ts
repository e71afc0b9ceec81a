import type { Command } from 'commander';

/**
 * The examples shown at the end of `--help`, by command path (`hermes` left out). One map for every
 * command registered by the files of src/cli, applied by `applyExamples` when main.ts builds the
 * tree. Commands whose file keeps an inline example (connector-commands.ts, demo.ts) need no entry;
 * test/cli/help-examples.test.ts checks every leaf has one and none is shown twice.
 */
export const EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  // connector (the admin commands keep some inline examples in connector-commands.ts)
  'connector install': [
    'RELAY_DB=/var/lib/hermes/connector.db TELEGRAM_BOT_TOKEN=… hermes connector install',
    'sudo hermes connector install --system --run-as-user hermes --env-file /etc/hermes/connector.env',
  ],
  'connector uninstall': ['hermes connector uninstall', 'sudo hermes connector uninstall --system --yes'],
  'connector tenant list': ['hermes connector tenant list', 'hermes connector tenant list --json'],
  'connector tenant token': ['hermes connector tenant token acme'],
  'connector gateway list': [
    'hermes connector gateway list',
    'hermes connector gateway list --tenant acme --json',
  ],
  'connector gateway revoke': [
    'hermes connector gateway revoke gw-laptop',
    'hermes connector gateway revoke gw-laptop --yes   # in a script',
  ],
  'connector gateway rotate': ['hermes connector gateway rotate gw-laptop'],
  'connector delivery-key rotate': ['hermes connector delivery-key rotate --tenant acme'],
  'connector route list': ['hermes connector route list', 'hermes connector route list --json'],
  'connector deliveries': ['hermes connector deliveries', 'hermes connector deliveries --dead --limit 20'],
  'connector deliveries retry': ['hermes connector deliveries retry 42'],
  'connector deliveries discard': [
    'hermes connector deliveries discard 42',
    'hermes connector deliveries discard 42 --yes   # in a script',
  ],
  'connector audit': ['hermes connector audit', 'hermes connector audit --tenant acme --limit 200 --json'],

  // gateway
  'gateway run': ['GATEWAY_RELAY_URL=ws://127.0.0.1:8700/relay hermes gateway run'],
  'gateway enroll': [
    'HERMES_PORTAL_TOKEN=hrt_… hermes gateway enroll --token hre_… --connector-url http://127.0.0.1:8700',
  ],
  'gateway status': [
    'hermes gateway status',
    'hermes --profile work gateway status --deep',
    'hermes gateway status --json',
  ],
  'gateway install': [
    'hermes gateway install',
    'hermes --profile work gateway install --no-start-now',
    'sudo hermes gateway install --system --run-as-user hermes',
  ],
  'gateway uninstall': ['hermes gateway uninstall', 'sudo hermes gateway uninstall --system --yes'],
  'gateway start': [
    'hermes gateway start',
    'hermes --profile work gateway start',
    'sudo hermes gateway start --system',
  ],
  'gateway stop': ['hermes gateway stop', 'hermes --profile work gateway stop'],
  'gateway idle': ['hermes gateway idle', 'hermes gateway start   # back: the backlog is delivered first'],
  'gateway restart': ['hermes gateway restart', 'hermes --profile work gateway restart'],
  'gateway list': ['hermes gateway list', 'hermes gateway list --json'],
  'gateway setup': [
    'hermes gateway setup',
    'hermes gateway setup --relay-url https://relay.example.com --agent echo --yes',
    'OPENAI_API_KEY=sk-… hermes gateway setup --relay-url wss://relay.example.com/relay --agent openai --model gpt-4o-mini --yes',
  ],
  'gateway migrate-legacy': [
    'hermes gateway migrate-legacy --dry-run',
    'sudo hermes gateway migrate-legacy -y',
  ],

  // the others
  doctor: [
    'hermes doctor',
    'hermes --profile work doctor --json',
    'hermes doctor --connector-url https://relay.example.com',
  ],
  dashboard: [
    'hermes dashboard',
    'hermes dashboard --host 0.0.0.0 --port 9119',
    'hermes dashboard --host 0.0.0.0 --trust-proxy 10.0.0.5 --allowed-host hermes.example.com',
  ],
  'dashboard set-password': [
    'hermes dashboard set-password --username admin',
    'printf \'%s\\n\' "$PASSWORD" | hermes dashboard set-password --password-stdin',
  ],
  demo: ['hermes demo', 'hermes demo --port-base 18700 --data-dir /tmp/hermes-demo'],
  'proxy start': [
    'hermes proxy start',
    'hermes proxy start --port 9000',
    'OPENAI_BASE_URL=http://127.0.0.1:11434/v1 OPENAI_API_KEY=x hermes proxy start',
    'hermes proxy start --host 0.0.0.0   # exposes the credential to your network',
  ],
  'proxy status': ['hermes proxy status', 'hermes proxy status --json'],
  'proxy providers': ['hermes proxy providers', 'hermes proxy providers --json'],
  completion: ['hermes completion bash   # prints the script; see Install above', 'hermes completion fish'],
  version: ['hermes version', 'hermes version --json', 'hermes --version'],
};

/** `connector gateway revoke` for a command (its names from below the root). */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let at: Command | null = command; at?.parent; at = at.parent) names.unshift(at.name());
  return names.join(' ');
}

/** The help text an example list adds. */
export function examplesText(lines: readonly string[]): string {
  return `\n${lines.length === 1 ? 'Example' : 'Examples'}:\n${lines.map((line) => `  ${line}`).join('\n')}`;
}

/** Every command under `root`, depth first. */
export function allCommands(root: Command): Command[] {
  return root.commands.flatMap((command) => [command, ...allCommands(command)]);
}

/** Add each command's examples from `EXAMPLES` to the end of its `--help`. */
export function applyExamples(root: Command): void {
  for (const command of allCommands(root)) {
    const lines = EXAMPLES[commandPath(command)];
    if (lines) command.addHelpText('after', examplesText(lines));
  }
}
