import { z } from 'zod';
import { describeZodError } from './errors.js';
import { type MessageEvent, MessageEventSchema } from './event.js';
import {
  type InboundFrameInput,
  InboundFrameSchema,
  type InterruptInboundFrameInput,
  InterruptInboundFrameSchema,
  type PassthroughForward,
  type PassthroughForwardFrameInput,
  PassthroughForwardFrameSchema,
} from './frames.js';
import { encodeFrame } from './framing.js';
import { isPlainObject, JSON_PARSE_ERRORS, parseJsonText } from './json.js';
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

/**
 * A verified platform webhook for a gateway of the current generation (current §12), stored as a
 * message-kind delivery so it keeps its session's order; it only travels on a socket.
 */
export interface PassthroughDeliveryBody {
  type: 'passthrough';
  forward: PassthroughForward;
  delivery_id: string;
}

export function passthroughDeliveryBody(
  forward: PassthroughForward,
  deliveryId: string,
): PassthroughDeliveryBody {
  return { type: 'passthrough', forward, delivery_id: deliveryId };
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

/** The socket frame that carries a delivery to a gateway without an endpoint. */
export type DeliveryFrame = InboundFrameInput | InterruptInboundFrameInput | PassthroughForwardFrameInput;

export type DeliveryFrameParse = { ok: true; frame: DeliveryFrame } | { ok: false; error: string };

/**
 * The frame a stored delivery body becomes on a gateway socket (reference §4.2): a message body an
 * `inbound` frame whose `bufferId` is the delivery id and whose event is the stored wire event,
 * unchanged (the bytes a signed POST would carry); an interrupt body an `interrupt_inbound` frame
 * (`session_key` falls back to the delivery's, `chat_id` to ""); a passthrough body a
 * `passthrough_forward` frame, acknowledged like an `inbound`. The frame is checked once, against
 * the schema the gateway reads it with; a body that makes no valid frame is an error result, never
 * an exception.
 */
export function deliveryFrame(delivery: {
  id: string;
  kind: 'message' | 'interrupt';
  sessionKey: string;
  body: string;
}): DeliveryFrameParse {
  const parsed = parseJsonText(delivery.body);
  if (!parsed.ok) return { ok: false, error: `stored body: ${JSON_PARSE_ERRORS[parsed.error]}` };
  if (!isPlainObject(parsed.value)) return { ok: false, error: 'stored body is not a JSON object' };
  const body = parsed.value;
  if (delivery.kind === 'interrupt') {
    const frame = {
      type: 'interrupt_inbound',
      session_key: body.session_key ?? delivery.sessionKey,
      chat_id: body.chat_id ?? '',
    };
    return accepted(InterruptInboundFrameSchema, frame);
  }
  if (body.type === 'passthrough')
    return accepted(PassthroughForwardFrameSchema, {
      type: 'passthrough_forward',
      forward: body.forward,
      bufferId: delivery.id,
    });
  return accepted(InboundFrameSchema, { type: 'inbound', event: body.event, bufferId: delivery.id });
}

/** A delivery's frame as one encoded NDJSON line, ready for a socket's `FrameWriter` (as an `EncodedLine`). */
export type DeliveryLine =
  | { ok: true; type: DeliveryFrame['type']; line: string }
  | { ok: false; error: string };

/** How every message body `messageDeliveryBody` makes (serialised once, at ingest) begins. */
const MESSAGE_BODY_PREFIX = '{"type":"message","event":{';
const INBOUND_LINE_PREFIX = '{"type":"inbound","event":';
/** `bufferId` bounds of `InboundFrameSchema`. */
const MAX_BUFFER_ID = 256;

/**
 * `deliveryFrame`, encoded: the line a stored delivery is written to its gateway socket as.
 *
 * The hot path (issue 20) is a message body exactly as this connector writes it at ingest,
 * `JSON.stringify(messageDeliveryBody(event, id))` with the row's own id: `{"type":"message",
 * "event":{…},"delivery_id":"<id>"}`, with no line break anywhere. Its event text is spliced into
 * the `inbound` line as stored, so an attempt costs no `JSON.parse`, no schema check and no
 * `JSON.stringify` of the event; the line is byte for byte the one `encodeFrame` makes from
 * `deliveryFrame`'s frame. This trusts what the connector wrote itself: the event was a JSON
 * object when it was serialised, and `MessageEventSchema` accepts every object (each field has a
 * fallback), so such a body always made a valid frame. Every other body — an interrupt, a
 * passthrough, a body of another shape (an older version's, a hand-edited or truncated row), a
 * body whose `delivery_id` is not the row's id — takes the checked path (`deliveryFrame`: parse,
 * schema check, serialise) and is refused there if it makes no valid frame. What the shape check
 * cannot see is damage strictly inside the event text of an otherwise intact row; the gateway
 * then skips the line as not JSON (and logs it) instead of the connector dead-lettering it.
 */
export function deliveryLine(delivery: {
  id: string;
  kind: 'message' | 'interrupt';
  sessionKey: string;
  body: string;
}): DeliveryLine {
  if (delivery.kind === 'message') {
    const line = splicedInboundLine(delivery.id, delivery.body);
    if (line !== undefined) return { ok: true, type: 'inbound', line };
  }
  const framed = deliveryFrame(delivery);
  if (!framed.ok) return framed;
  return { ok: true, type: framed.frame.type, line: encodeFrame(framed.frame) };
}

/** The `inbound` line of a body in the exact shape ingest writes, or undefined for any other. */
function splicedInboundLine(id: string, body: string): string | undefined {
  if (id.length === 0 || id.length > MAX_BUFFER_ID) return undefined;
  const quotedId = JSON.stringify(id);
  const suffix = `},"delivery_id":${quotedId}}`;
  if (
    body.length < MESSAGE_BODY_PREFIX.length + suffix.length ||
    !body.startsWith(MESSAGE_BODY_PREFIX) ||
    !body.endsWith(suffix) ||
    // A line break would end the frame early on the wire (JSON.stringify never writes one).
    body.includes('\n')
  )
    return undefined;
  // The event text runs from its `{` to the `}` that opens the suffix.
  const event = body.slice(MESSAGE_BODY_PREFIX.length - 1, body.length - suffix.length + 1);
  return `${INBOUND_LINE_PREFIX}${event},"bufferId":${quotedId}}\n`;
}

/** `frame` itself (not the parse output, so nothing is re-serialised) once `schema` accepts it. */
function accepted<
  S extends
    | typeof InboundFrameSchema
    | typeof InterruptInboundFrameSchema
    | typeof PassthroughForwardFrameSchema,
>(schema: S, frame: unknown): DeliveryFrameParse {
  const checked = schema.safeParse(frame);
  if (!checked.success)
    return { ok: false, error: `stored body makes no valid frame: ${describeZodError(checked.error)}` };
  // What the reader's schema accepts is, on the wire, a frame of that schema's input type.
  return { ok: true, frame: frame as z.input<S> };
}
