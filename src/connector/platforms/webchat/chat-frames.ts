/**
 * The web chat's own socket frames (browser ⇄ connector, JSON text over `/chat/ws`), as types only:
 * the adapter and the page script (`web/app.ts`) both import them, so the two cannot drift. The
 * browser's one frame, `{type:'message', text, clientId?}`, is validated by the adapter's schema.
 */

export interface WebChatMessage {
  id: string;
  role: 'user' | 'agent' | 'system';
  text: string;
  /** Milliseconds since the epoch. */
  ts: number;
  /** User messages: `sent` until the connector queued it for the agent (`delivered`) or could not. */
  status?: 'sent' | 'delivered' | 'failed';
}

/** Connector → browser. */
export type WebChatServerFrame =
  | { type: 'history'; messages: WebChatMessage[] }
  | { type: 'message'; message: WebChatMessage; clientId?: string }
  | { type: 'edit'; message_id: string; text: string }
  | { type: 'ack'; message_id: string }
  | { type: 'failed'; message_id: string }
  | { type: 'typing'; on: boolean }
  | { type: 'error'; message: string };
