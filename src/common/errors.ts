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
