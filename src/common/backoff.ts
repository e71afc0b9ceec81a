/**
 * The one exponential backoff: the `attempt`-th wait (1-based) is `baseMs · 2^(attempt−1)`, capped at
 * `capMs`, then spread by `jitter` so that many clients failing together do not retry together:
 * - `none`: exactly the step;
 * - `equal`: uniform in [step/2, step] (never sooner than half the step);
 * - `full`: uniform in [0, step].
 */
export type Jitter = 'none' | 'equal' | 'full';

export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
  jitter: Jitter;
}

export function backoffDelay(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  if (policy.baseMs <= 0 || policy.capMs <= 0) return 0;
  // Past 2^62 the step is the cap anyway; stopping there keeps the product finite.
  const exponent = Math.min(Math.max(0, Math.floor(attempt) - 1), 62);
  const step = Math.min(policy.capMs, policy.baseMs * 2 ** exponent);
  switch (policy.jitter) {
    case 'none':
      return step;
    case 'equal':
      return step / 2 + random() * (step / 2);
    case 'full':
      return random() * step;
  }
}
