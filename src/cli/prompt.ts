import { createInterface as createLineReader, type Interface } from 'node:readline';
import password from '@inquirer/password';
import { CliError } from './errors.js';

/**
 * The CLI's questions. On a terminal, secrets are asked with `@inquirer/password` (nothing echoed);
 * when input is piped (scripts, tests) every answer, secret or not, is simply the next line.
 */

const isTerminal = () => process.stdin.isTTY === true;

/** One secret from the terminal, or the next line of piped input; prompts go to `output`. */
export async function readSecretLine(
  prompt: string,
  output: NodeJS.WritableStream = process.stderr,
): Promise<string> {
  if (isTerminal()) return password({ message: prompt.trim().replace(/:$/, ''), mask: false }, { output });
  const prompter = new Prompter(output);
  try {
    return await prompter.ask('');
  } finally {
    prompter.close();
  }
}

/**
 * Line questions on ONE readline interface, so answers typed ahead or pasted are not lost between
 * questions. A `secret` question on a terminal is asked by `@inquirer/password` while the line
 * interface is closed (two readers of one terminal would both echo and both take the line); an
 * answer already typed ahead is taken as it is.
 */
export class Prompter {
  private rl: Interface | undefined;
  private readonly queued: string[] = [];
  private waiting: ((line: string | undefined) => void) | undefined;
  private ended = false;

  constructor(private readonly output: NodeJS.WritableStream = process.stdout) {
    this.open();
  }

  async ask(question: string, options: { secret?: boolean } = {}): Promise<string> {
    if (options.secret && isTerminal()) {
      const typedAhead = this.queued.shift();
      if (typedAhead !== undefined) {
        this.output.write(`${question}\n`);
        return typedAhead;
      }
      this.suspend();
      try {
        return await password(
          { message: question.trim().replace(/:$/, ''), mask: false },
          { output: this.output },
        );
      } finally {
        this.open();
      }
    }
    const rl = this.open();
    if (question) {
      rl.setPrompt(question);
      rl.prompt();
    }
    const line =
      this.queued.shift() ??
      (this.ended ? undefined : await new Promise<string | undefined>((resolve) => (this.waiting = resolve)));
    if (line === undefined)
      throw new CliError('input ended before the questions were answered; nothing was written');
    return line;
  }

  close(): void {
    this.suspend();
  }

  private open(): Interface {
    if (this.rl) return this.rl;
    const rl = createLineReader({ input: process.stdin, output: this.output, terminal: isTerminal() });
    this.rl = rl;
    rl.on('line', (line) => {
      const waiting = this.waiting;
      this.waiting = undefined;
      if (waiting) waiting(line);
      else this.queued.push(line);
    });
    rl.on('close', () => {
      // Our own suspend() is not the end of input.
      if (this.rl !== rl) return;
      this.rl = undefined;
      this.ended = true;
      this.waiting?.(undefined);
      this.waiting = undefined;
    });
    return rl;
  }

  private suspend(): void {
    const rl = this.rl;
    this.rl = undefined;
    rl?.close();
  }
}

/** A yes/no question; Enter takes the default. */
export async function confirm(question: string, defaultYes: boolean): Promise<boolean> {
  const prompter = new Prompter();
  try {
    const answer = (await prompter.ask(`${question} ${defaultYes ? '[Y/n]' : '[y/N]'} `))
      .trim()
      .toLowerCase();
    if (answer === '') return defaultYes;
    return answer === 'y' || answer === 'yes';
  } finally {
    prompter.close();
  }
}

/** Both ends are a terminal: questions may be asked. */
export const interactive = () => process.stdin.isTTY === true && process.stdout.isTTY === true;

/**
 * Irreversible commands ask first. On a terminal: a y/N question (default no). Elsewhere the
 * command refuses unless `--yes` was given, so a script never destroys something by accident.
 */
export async function confirmIrreversible(
  action: string,
  options: { yes?: boolean | undefined },
): Promise<void> {
  if (options.yes) return;
  if (!interactive())
    throw new CliError(
      `${action} cannot be undone: pass --yes to confirm (input is not a terminal, so nothing was asked)`,
      2,
    );
  if (!(await confirm(`${action}? This cannot be undone.`, false)))
    throw new CliError('cancelled; nothing was changed', 1);
}
