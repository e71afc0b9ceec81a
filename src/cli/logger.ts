import { type Logger, pino } from 'pino';

/** JSON log lines on stderr (stdout stays for command output). Secrets are never passed to it. */
export function createLogger(level: string, name: string): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: false }));
}
