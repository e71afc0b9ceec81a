/**
 * The one loopback rule for bind decisions (the dashboard's auth gate, the proxy's refusal to
 * listen beyond the machine) and for "does this URL leave the machine": exactly `localhost`,
 * `127.0.0.1` and `::1` (brackets and case ignored), as the reference dashboard's
 * `should_require_auth` has it. Other 127.x addresses and IPv4-mapped forms count as not loopback:
 * the stricter reading, so a doubtful bind asks for a login or an explicit `--host`.
 */
const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '::1']);

export function isLoopbackHost(host: string): boolean {
  let value = host.trim().toLowerCase();
  if (value.startsWith('[') && value.endsWith(']')) value = value.slice(1, -1);
  return LOOPBACK_HOSTS.has(value);
}
