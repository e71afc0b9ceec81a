/**
 * Session keys exactly as the reference `build_session_key` (June reference §7.3, current §5.6). The
 * key decides which conversation a message joins, so any change here splits or merges users'
 * conversations. The current algorithm only adds to the June one: every June key is unchanged.
 */

export interface SessionKeySource {
  platform: string;
  chat_id?: string | null;
  chat_type?: string | null;
  user_id?: string | null;
  user_id_alt?: string | null;
  thread_id?: string | null;
  /** Slack workspace (or Discord guild, which is deliberately not part of the key). */
  scope_id?: string | null;
  /** The thread a channel message's reply will be auto-threaded into. */
  prospective_thread_id?: string | null;
  /** Multiplex namespace; absent or `default` is `agent:main`. */
  profile?: string | null;
}

export interface SessionKeyOptions {
  /** Separate sessions per participant in groups (default true). */
  groupSessionsPerUser?: boolean;
  /** Separate sessions per participant in threads (default false: threads are shared). */
  threadSessionsPerUser?: boolean;
  /** WhatsApp identity canonicaliser; the default strips the JID domain, device suffix and `+`. */
  canonicalWhatsapp?: (id: string) => string;
}

/** The mapping-free form of the reference canonicaliser: `+1555:3@s.whatsapp.net` → `1555`. */
export function canonicalWhatsappId(id: string): string {
  const local = id.trim().split('@', 1)[0] ?? '';
  const withoutDevice = local.split(':', 1)[0] ?? '';
  return withoutDevice.replace(/^\+/, '');
}

/** `agent:main`, `agent:<profile>`, or `agent:main~` for a profile literally named `main`. */
export function sessionKeyNamespace(profile?: string | null): string {
  if (!profile || profile === 'default') return 'agent:main';
  return profile === 'main' ? 'agent:main~' : `agent:${profile}`;
}

export function buildSessionKey(source: SessionKeySource, options: SessionKeyOptions = {}): string {
  const groupPerUser = options.groupSessionsPerUser ?? true;
  const threadPerUser = options.threadSessionsPerUser ?? false;
  const canonical = options.canonicalWhatsapp ?? canonicalWhatsappId;
  const platform = source.platform;
  const isWhatsapp = platform === 'whatsapp';
  const chatType = source.chat_type || 'dm';
  const isDm = chatType === 'dm';
  const chat = isDm && isWhatsapp ? canonical(source.chat_id || '') : source.chat_id || '';
  const thread = source.thread_id || (isDm ? '' : source.prospective_thread_id || '');
  // A prospective thread is keyed as the thread it will become, shared by everyone in it.
  const typeSlot = thread && !source.thread_id ? 'thread' : chatType;
  const isolate = isDm ? !chat : groupPerUser && !(thread && !threadPerUser);
  let who = source.user_id_alt || source.user_id || '';
  if (who && isWhatsapp) who = canonical(who) || who;

  const parts = [sessionKeyNamespace(source.profile), platform, typeSlot];
  if (platform === 'slack' && source.scope_id) parts.push(source.scope_id);
  if (chat) parts.push(chat);
  const user = isolate && who ? [who] : [];
  const threadPart = thread ? [thread] : [];
  parts.push(...(isDm ? [...user, ...threadPart] : [...threadPart, ...user]));
  return parts.join(':');
}

/**
 * The keys a gateway's `interrupt` may mean. A reference gateway maps a platform name it does not
 * know (our `webchat`, say) to `relay`, so it names `agent:main:relay:dm:room` the session this
 * connector keys `agent:main:webchat:dm:room`. Returns the key itself first, then, when its platform
 * segment is `relay`, the same key for each of `platforms`.
 */
export function sessionKeyAliases(sessionKey: string, platforms: readonly string[]): string[] {
  const parts = sessionKey.split(':');
  if (parts.length < 4 || parts[0] !== 'agent' || parts[2] !== 'relay') return [sessionKey];
  const aliases = [sessionKey];
  for (const platform of platforms) {
    if (platform === 'relay') continue;
    aliases.push([parts[0], parts[1], platform, ...parts.slice(3)].join(':'));
  }
  return aliases;
}
