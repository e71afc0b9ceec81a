/**
 * Print a server's banner and wait for SIGINT/SIGTERM, then stop it. The handlers go in before
 * the banner: whoever waits for the banner may signal at once, and the default action would kill
 * the process with its last log lines still unwritten.
 */
export async function serveUntilSignal(
  running: { stop(): Promise<unknown> },
  banner: string,
  options: { announce?: boolean } = {},
): Promise<void> {
  const stopped = new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      if (options.announce) process.stdout.write(`received ${signal}, stopping…\n`);
      void running.stop().then(
        () => resolve(),
        () => resolve(),
      );
    };
    process.once('SIGINT', () => shutdown('SIGINT'));
    process.once('SIGTERM', () => shutdown('SIGTERM'));
  });
  process.stdout.write(banner);
  await stopped;
}
