import { createInterface } from 'node:readline';

/** Read one line from stdin without echoing it (for passwords); plain read when stdin is not a TTY. */
export function readSecretLine(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const input = process.stdin;
    const rl = createInterface({ input, output: process.stderr, terminal: input.isTTY === true });
    if (input.isTTY) {
      process.stderr.write(prompt);
      // Swallow echo: readline writes through _writeToOutput; replace it while reading.
      (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => undefined;
    }
    let answered = false;
    rl.once('line', (line) => {
      answered = true;
      if (input.isTTY) process.stderr.write('\n');
      resolve(line);
      rl.close();
    });
    rl.once('close', () => {
      if (!answered) reject(new Error('no input'));
    });
  });
}
