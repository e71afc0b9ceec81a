/**
 * Redaction for error messages and logs, written once: secrets a component knows (tokens, keys)
 * are cut out of free text, and credentials embedded in URLs are masked.
 */

const REDACTED = '[redacted]';

/**
 * Replace every occurrence of each secret in `text`, also in its URL-encoded form (a token inside
 * a request URL, as Telegram's bot API has it). Secrets shorter than 4 characters are left alone:
 * cutting them would mangle ordinary words without protecting anything.
 */
export function redact(text: string, secrets: readonly (string | undefined | null)[]): string {
  let out = text;
  for (const secret of secrets) {
    if (!secret || secret.length < 4) continue;
    out = out.split(secret).join(REDACTED);
    const encoded = encodeURIComponent(secret);
    if (encoded !== secret) out = out.split(encoded).join(REDACTED);
  }
  return out;
}

/**
 * The URL with its embedded credential masked: the password (`redis://user:***@host:6379`), or a
 * lone user name, which is then the credential (`https://***@host`). Other URLs as given. Text that
 * does not parse as a URL still has anything between `//` and `@` masked.
 */
export function redactUrl(value: string): string {
  try {
    const url = new URL(value);
    if (!url.username && !url.password) return value;
    if (url.password) url.password = '***';
    else url.username = '***';
    return url.toString().replace(/\/$/, '');
  } catch {
    return value.replace(/\/\/[^@/]*@/, '//***@');
  }
}
