/**
 * Session keys exactly as the reference `build_session_key` (reference §7.3). The key decides which
 * conversation a message joins, so any change here splits or merges users' conversations.
 */

export interface SessionKeySource {
  platform: string;
  chat_id?: string | null;
  chat_type?: string | null;
  user_id?: string | null;
  user_id_alt?: string | null;
  thread_id?: string | null;
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

export function buildSessionKey(source: SessionKeySource, options: SessionKeyOptions = {}): string {
  const groupPerUser = options.groupSessionsPerUser ?? true;
  const threadPerUser = options.threadSessionsPerUser ?? false;
  const canonical = options.canonicalWhatsapp ?? canonicalWhatsappId;
  const platform = source.platform;
  const isWhatsapp = platform === 'whatsapp';
  const threadId = source.thread_id || '';
  let who = source.user_id_alt || source.user_id || '';
  if (who && isWhatsapp) who = canonical(who) || who;

  const chatType = source.chat_type || 'dm';
  if (chatType === 'dm') {
    const chat = isWhatsapp ? canonical(source.chat_id || '') : source.chat_id || '';
    const owner = chat || who;
    const parts = ['agent:main', platform, 'dm'];
    if (owner) parts.push(owner);
    if (threadId) parts.push(threadId);
    return parts.join(':');
  }

  const parts = ['agent:main', platform, chatType];
  if (source.chat_id) parts.push(source.chat_id);
  if (threadId) parts.push(threadId);
  const isolate = groupPerUser && !(threadId && !threadPerUser);
  if (isolate && who) parts.push(who);
  return parts.join(':');
}
