/**
 * The web chat's own socket frames (browser ⇄ connector, JSON text over `/chat/ws`), as types only:
 * the adapter and the page script (`web/app.ts`) both import them, so the two cannot drift. The
 * browser's frames, `{type:'message', text, clientId?}` and `{type:'press', message_id, option_id}`
 * (a prompt button), are validated by the adapter's schema.
 */

export interface WebChatMessage {
  id: string;
  role: 'user' | 'agent' | 'system';
  text: string;
  /** Milliseconds since the epoch. */
  ts: number;
  /** User messages: `sent` until the connector queued it for the agent (`delivered`) or could not. */
  status?: 'sent' | 'delivered' | 'failed';
  /** Files of an agent message: same-origin `/chat/file/…` URLs, or an external https link. */
  attachments?: WebChatAttachment[];
  /** An agent question with buttons; `chosen` is the label of the option pressed. */
  prompt?: { id: string; options: { id: string; label: string }[]; chosen?: string };
  /** Emoji the agent put on this message. */
  reactions?: string[];
}

export interface WebChatAttachment {
  url: string;
  name: string;
  mime: string;
  kind: string;
}

/** Connector → browser. */
export type WebChatServerFrame =
  | { type: 'history'; messages: WebChatMessage[] }
  | { type: 'message'; message: WebChatMessage; clientId?: string }
  | { type: 'edit'; message_id: string; text: string }
  /** A message changed in place (an option chosen, a reaction): render it again, quietly. */
  | { type: 'update'; message: WebChatMessage }
  | { type: 'ack'; message_id: string }
  | { type: 'failed'; message_id: string }
  | { type: 'typing'; on: boolean }
  | { type: 'error'; message: string };
