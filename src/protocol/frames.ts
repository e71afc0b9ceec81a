import { z } from 'zod';
import { type OutboundActionInput, OutboundResultSchema } from './actions.js';
import { withCompiledParser } from './compiled.js';
import { CapabilityDescriptorSchema } from './descriptor.js';
import { describeZodError } from './errors.js';
import { COMPILABLE_MESSAGE_EVENT, MessageEventDefinition } from './event.js';

/**
 * WebSocket frames (reference §4.2, spec decision 5). Frames a gateway sends are "G→C", frames a
 * connector sends are "C→G". Each side parses only the other side's frames; anything else,
 * including an echo of its own frame types, is ignored.
 */

const requestId = z.string().min(1).max(256);
const bufferId = z.union([z.string().min(1).max(256), z.number()]);

// G→C
/** Discord's slash-command tree as a gateway declares it (current §4.1); options pass through. */
export const CommandManifestSchema = z
  .array(
    z.looseObject({
      name: z.string().min(1).max(32),
      description: z.string().max(100),
      options: z.array(z.looseObject({})).max(25).optional(),
    }),
  )
  .max(100);

export const HelloFrameSchema = z.object({
  type: z.literal('hello'),
  platform: z.string().max(128).catch('relay').default('relay'),
  botId: z.string().max(256).catch('').default(''),
  command_manifest: CommandManifestSchema.optional().catch(undefined),
});
export const OutboundFrameSchema = z.object({
  type: z.literal('outbound'),
  requestId,
  // Kept loose here: the connector must answer even an action it cannot run, so the envelope
  // parses on its own and `parseOutboundAction` judges the action.
  action: z.looseObject({ op: z.string() }),
  // The identity the frame speaks for (current §4.3); absent = the socket's first hello.
  platform: z.string().max(128).optional().catch(undefined),
  botId: z.string().max(256).optional().catch(undefined),
});
/** The gateway is about to go dormant: stop live delivery to it and buffer (current §9). */
export const GoingIdleFrameSchema = z.object({ type: z.literal('going_idle') });
export const InterruptFrameSchema = z.object({
  type: z.literal('interrupt'),
  session_key: z.string().min(1).max(1024),
  reason: z
    .string()
    .max(1024)
    .nullish()
    .transform((v) => v ?? null),
});
export const InboundAckFrameSchema = z.object({ type: z.literal('inbound_ack'), bufferId });

// C→G
export const DescriptorFrameSchema = z.object({
  type: z.literal('descriptor'),
  descriptor: CapabilityDescriptorSchema,
});
export const OutboundResultFrameSchema = z.object({
  type: z.literal('outbound_result'),
  requestId,
  result: OutboundResultSchema,
});
/** The `inbound` frame as zod interprets it: the definition, and the reference of its fast path. */
export const InboundFrameDefinition = z.object({
  type: z.literal('inbound'),
  event: MessageEventDefinition,
  bufferId: bufferId.optional(),
});
/** The socket's hot frame: compiled like its event (`./compiled.ts`), errors from the definition. */
export const InboundFrameSchema = withCompiledParser(
  InboundFrameDefinition,
  InboundFrameDefinition.extend({ event: COMPILABLE_MESSAGE_EVENT }),
);
export const GoingIdleAckFrameSchema = z.object({ type: z.literal('going_idle_ack') });
/** A platform webhook the connector verified and acknowledged, forwarded as received (current §12). */
export const PassthroughForwardSchema = z.object({
  platform: z.string().max(128),
  botId: z.string().max(256).catch(''),
  method: z.string().max(16),
  path: z.string().max(2048),
  headers: z
    .array(z.tuple([z.string().max(256), z.string().max(8192)]))
    .max(100)
    .catch([]),
  bodyB64: z.string().catch(''),
  profile: z.string().max(128).optional().catch(undefined),
});
export const PassthroughForwardFrameSchema = z.object({
  type: z.literal('passthrough_forward'),
  forward: PassthroughForwardSchema,
  bufferId: bufferId.optional(),
});
export const InterruptInboundFrameSchema = z.object({
  type: z.literal('interrupt_inbound'),
  session_key: z.string().min(1).max(1024),
  chat_id: z
    .union([z.string(), z.number(), z.null()])
    .optional()
    .transform((v) => (v === null || v === undefined ? '' : String(v))),
});

export type HelloFrame = z.output<typeof HelloFrameSchema>;
export type OutboundFrame = z.output<typeof OutboundFrameSchema>;
export type InterruptFrame = z.output<typeof InterruptFrameSchema>;
export type InboundAckFrame = z.output<typeof InboundAckFrameSchema>;
export type GoingIdleFrame = z.output<typeof GoingIdleFrameSchema>;
export type GoingIdleAckFrame = z.output<typeof GoingIdleAckFrameSchema>;
export type PassthroughForward = z.output<typeof PassthroughForwardSchema>;
export type PassthroughForwardFrame = z.output<typeof PassthroughForwardFrameSchema>;
export type CommandManifest = z.output<typeof CommandManifestSchema>;
export type DescriptorFrame = z.output<typeof DescriptorFrameSchema>;
export type OutboundResultFrame = z.output<typeof OutboundResultFrameSchema>;
export type InboundFrame = z.output<typeof InboundFrameSchema>;
export type InterruptInboundFrame = z.output<typeof InterruptInboundFrameSchema>;

export type GatewayFrame = HelloFrame | OutboundFrame | InterruptFrame | InboundAckFrame | GoingIdleFrame;
export type ConnectorFrame =
  | DescriptorFrame
  | OutboundResultFrame
  | InboundFrame
  | InterruptInboundFrame
  | GoingIdleAckFrame
  | PassthroughForwardFrame;

/*
 * What a side writes: the input form of the schema its peer reads the frame with, so a frame built
 * with a misspelt, missing or mistyped field does not compile. Fields the reader defaults may be
 * left out. (The types above are what a reader gets back, after defaults and transforms.)
 */

export type HelloFrameInput = z.input<typeof HelloFrameSchema>;
/** The envelope schema reads `action` loosely (see above); a gateway writes a typed action. */
export type OutboundFrameInput = Omit<z.input<typeof OutboundFrameSchema>, 'action'> & {
  action: OutboundActionInput;
};
export type InterruptFrameInput = z.input<typeof InterruptFrameSchema>;
export type InboundAckFrameInput = z.input<typeof InboundAckFrameSchema>;
export type DescriptorFrameInput = z.input<typeof DescriptorFrameSchema>;
export type OutboundResultFrameInput = z.input<typeof OutboundResultFrameSchema>;
export type InboundFrameInput = z.input<typeof InboundFrameSchema>;
export type InterruptInboundFrameInput = z.input<typeof InterruptInboundFrameSchema>;
export type GoingIdleFrameInput = z.input<typeof GoingIdleFrameSchema>;
export type GoingIdleAckFrameInput = z.input<typeof GoingIdleAckFrameSchema>;
export type PassthroughForwardFrameInput = z.input<typeof PassthroughForwardFrameSchema>;

/** A frame a gateway writes (G→C). */
export type GatewayFrameInput =
  | HelloFrameInput
  | OutboundFrameInput
  | InterruptFrameInput
  | InboundAckFrameInput
  | GoingIdleFrameInput;
/** A frame a connector writes (C→G). */
export type ConnectorFrameInput =
  | DescriptorFrameInput
  | OutboundResultFrameInput
  | InboundFrameInput
  | InterruptInboundFrameInput
  | GoingIdleAckFrameInput
  | PassthroughForwardFrameInput;
/** Any frame either side writes: what the encoder takes. */
export type WireFrame = GatewayFrameInput | ConnectorFrameInput;

export type FrameParse<F> =
  | { kind: 'frame'; frame: F }
  | { kind: 'ignored'; type: string }
  | { kind: 'invalid'; type: string | undefined; error: string };

const gatewayFrameSchemas: Record<string, z.ZodType> = {
  hello: HelloFrameSchema,
  outbound: OutboundFrameSchema,
  interrupt: InterruptFrameSchema,
  inbound_ack: InboundAckFrameSchema,
  going_idle: GoingIdleFrameSchema,
};
const connectorFrameSchemas: Record<string, z.ZodType> = {
  descriptor: DescriptorFrameSchema,
  outbound_result: OutboundResultFrameSchema,
  inbound: InboundFrameSchema,
  interrupt_inbound: InterruptInboundFrameSchema,
  going_idle_ack: GoingIdleAckFrameSchema,
  passthrough_forward: PassthroughForwardFrameSchema,
};

function parseWith<F>(schemas: Record<string, z.ZodType>, value: unknown): FrameParse<F> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { kind: 'invalid', type: undefined, error: 'frame must be a JSON object' };
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string')
    return { kind: 'invalid', type: undefined, error: 'frame has no string "type"' };
  const schema = Object.hasOwn(schemas, type) ? schemas[type] : undefined;
  if (!schema) return { kind: 'ignored', type: type.slice(0, 64) };
  const parsed = schema.safeParse(value);
  return parsed.success
    ? { kind: 'frame', frame: parsed.data as F }
    : { kind: 'invalid', type, error: describeZodError(parsed.error) };
}

/** What the connector reads: frames the gateway sent. */
export function parseGatewayFrame(value: unknown): FrameParse<GatewayFrame> {
  return parseWith<GatewayFrame>(gatewayFrameSchemas, value);
}

/** What the gateway reads: frames the connector sent. */
export function parseConnectorFrame(value: unknown): FrameParse<ConnectorFrame> {
  return parseWith<ConnectorFrame>(connectorFrameSchemas, value);
}
