/**
 * The message of anything thrown: an Error's message, else the value as text. Thrown values are
 * not always Errors (a rejected promise can carry a string, a number or undefined), and reading
 * `.message` off those would log "undefined".
 */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { message?: unknown }).message === 'string'
  )
    return (error as { message: string }).message;
  return String(error);
}

/** Network error codes that mean the request never left this machine (so it cannot have arrived). */
const UNSENT_NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/**
 * True when a failed request certainly never reached the server: a refused connection, an unknown
 * host, no route. Anything else (a reset, a timeout) may have been received: a write is ambiguous.
 * Reads the error's `code`, or its `cause`'s (fetch/undici wraps the socket error).
 */
export function neverSent(error: unknown): boolean {
  const outer = error as { code?: unknown; cause?: { code?: unknown } } | null | undefined;
  const code = outer?.cause?.code ?? outer?.code;
  return typeof code === 'string' && UNSENT_NETWORK_CODES.has(code);
}
