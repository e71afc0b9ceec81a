/**
 * The one polling helper of the test suite: resolve with the probe's first value that is neither
 * `undefined` nor `false` (a probe that throws counts as not yet), or reject after `timeoutMs` naming
 * what was awaited. For state that settles asynchronously (a socket closing, a row being written),
 * instead of a fixed sleep.
 */
export function until<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
  what = 'condition',
  intervalMs = 10,
): Promise<Exclude<T, false>> {
  const started = Date.now();
  return new Promise((resolveValue, reject) => {
    const tick = async () => {
      try {
        const value = await probe();
        if (value !== undefined && value !== false) return resolveValue(value as Exclude<T, false>);
      } catch {
        // not yet
      }
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, intervalMs);
    };
    void tick();
  });
}
