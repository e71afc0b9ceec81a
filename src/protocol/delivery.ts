import { z } from 'zod';
import { type MessageEvent, MessageEventSchema } from './event.js';
import { isPlainObject } from './json.js';
import { RECEIVER_ERRORS } from './wire.js';

/**
 * Bodies of signed deliveries (reference §3.4, spec decisions 4 and 6). A connector builds them
 * with these helpers and serialises them exactly once; a gateway interprets the parsed body with
 * `interpretDelivery`, after the signature over the raw bytes has been verified.
 */

export interface MessageDeliveryBody {
  type: 'message';
  event: Record<string, unknown>;
  delivery_id?: string;
}

export interface InterruptDeliveryBody {
  type: 'interrupt';
  session_key: string;
  chat_id: string;
  reason: string;
  delivery_id?: string;
}

export function messageDeliveryBody(
  event: Record<string, unknown>,
  deliveryId?: string,
): MessageDeliveryBody {
  return deliveryId ? { type: 'message', event, delivery_id: deliveryId } : { type: 'message', event };
}

export function interruptDeliveryBody(
  sessionKey: string,
  chatId: string,
  reason = 'stop',
  deliveryId?: string,
): InterruptDeliveryBody {
  const body: InterruptDeliveryBody = { type: 'interrupt', session_key: sessionKey, chat_id: chatId, reason };
  if (deliveryId) body.delivery_id = deliveryId;
  return body;
}

export type InterpretedDelivery =
  | { kind: 'message'; event: MessageEvent; deliveryId: string | undefined }
  | { kind: 'interrupt'; sessionKey: string; chatId: string; deliveryId: string | undefined }
  | { kind: 'rejected'; status: 400; error: string };

const optionalString = z.unknown().transform((v) => (typeof v === 'string' ? v : undefined));

/**
 * Reference §3.3 steps 4–5 for an already-verified, already-parsed body. `path` is the request
 * path; `/interrupt` or a body `type` of `interrupt` makes it an interrupt. An interrupt with no
 * session key is still a 200 with nothing dispatched (the caller checks `sessionKey`).
 */
export function interpretDelivery(path: string, body: unknown): InterpretedDelivery {
  const record = isPlainObject(body) ? body : {};
  const deliveryId = optionalString.parse(record.delivery_id);
  if (path === '/interrupt' || record.type === 'interrupt') {
    const sessionKey = optionalString.parse(record.session_key) ?? '';
    // The reference quirk: chat_id falls back to reason.
    const chatId = optionalString.parse(record.chat_id) || optionalString.parse(record.reason) || '';
    return { kind: 'interrupt', sessionKey, chatId, deliveryId };
  }
  const event = record.event;
  if (!isPlainObject(event)) return { kind: 'rejected', status: 400, error: RECEIVER_ERRORS.missingEvent };
  const parsed = MessageEventSchema.safeParse(event);
  if (!parsed.success) return { kind: 'rejected', status: 400, error: RECEIVER_ERRORS.missingEvent };
  return { kind: 'message', event: parsed.data, deliveryId };
}
