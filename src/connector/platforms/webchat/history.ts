import type { RelayStore, WebChatEntry } from '../../store/types.js';

/**
 * Where the web chat keeps each chat's messages: the connector's store (every instance reads the
 * same history, and it survives a restart), or, for an adapter run without a connector (unit
 * tests), {@link MemoryWebChatHistory}.
 */
export type WebChatHistoryStore = Pick<
  RelayStore,
  | 'appendWebChatMessage'
  | 'getWebChatMessage'
  | 'listWebChatMessages'
  | 'replaceWebChatMessage'
  | 'deleteWebChatMessages'
>;

/**
 * The store's history semantics in memory, for one process: at most `maxChats` chats (the one
 * least recently written to is forgotten first).
 */
export class MemoryWebChatHistory implements WebChatHistoryStore {
  /** In LRU order: the chat least recently written to comes first. */
  readonly #chats = new Map<string, WebChatEntry[]>();
  readonly #maxChats: number;

  constructor(maxChats: number) {
    this.#maxChats = Math.max(1, maxChats);
  }

  async appendWebChatMessage(
    entry: WebChatEntry,
    keep: number,
  ): Promise<{ entry: WebChatEntry; inserted: boolean }> {
    const entries = this.#chats.get(entry.chatId) ?? [];
    const first = entry.clientId === null ? undefined : entries.find((e) => e.clientId === entry.clientId);
    if (first) return { entry: { ...first }, inserted: false };
    if (entries.some((e) => e.id === entry.id))
      throw new Error(`web-chat message ${entry.id} is already stored`);
    entries.push({ ...entry });
    if (entries.length > keep) entries.splice(0, entries.length - Math.max(1, keep));
    this.#chats.delete(entry.chatId);
    this.#chats.set(entry.chatId, entries);
    for (const id of this.#chats.keys()) {
      if (this.#chats.size <= this.#maxChats) break;
      this.#chats.delete(id);
    }
    return { entry, inserted: true };
  }

  async getWebChatMessage(chatId: string, id: string): Promise<WebChatEntry | null> {
    const found = this.#chats.get(chatId)?.find((e) => e.id === id);
    return found ? { ...found } : null;
  }

  async listWebChatMessages(chatId: string, limit: number): Promise<WebChatEntry[]> {
    const entries = this.#chats.get(chatId) ?? [];
    return entries.slice(Math.max(0, entries.length - limit)).map((e) => ({ ...e }));
  }

  async replaceWebChatMessage(
    chatId: string,
    id: string,
    previousBody: string,
    body: string,
  ): Promise<boolean> {
    const found = this.#chats.get(chatId)?.find((e) => e.id === id);
    if (!found || found.body !== previousBody) return false;
    found.body = body;
    return true;
  }

  async deleteWebChatMessages(chatId: string, ids: readonly string[]): Promise<number> {
    const entries = this.#chats.get(chatId);
    if (!entries) return 0;
    const kept = entries.filter((e) => !ids.includes(e.id));
    this.#chats.set(chatId, kept);
    return entries.length - kept.length;
  }
}
