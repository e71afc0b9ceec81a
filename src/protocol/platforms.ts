/**
 * Platform names the gateway recognises in `source.platform`. The reference maps anything else to
 * `relay` before building the session key (reference §7.1), so this list is part of the contract:
 * adding a name changes the session keys of events that carry it.
 */
export const KNOWN_PLATFORMS = [
  'telegram',
  'discord',
  'whatsapp',
  'slack',
  'signal',
  'matrix',
  'mattermost',
  'email',
  'sms',
  'homeassistant',
  'dingtalk',
  'feishu',
  'wecom',
  'bluebubbles',
  'webhook',
  'api_server',
  'webchat',
  'local',
  'relay',
] as const;

export type KnownPlatform = (typeof KNOWN_PLATFORMS)[number];

const known: ReadonlySet<string> = new Set(KNOWN_PLATFORMS);

/** The gateway-side mapping: an unknown or missing platform becomes `relay`. */
export function normalizePlatform(name: unknown): KnownPlatform {
  return typeof name === 'string' && known.has(name) ? (name as KnownPlatform) : 'relay';
}
