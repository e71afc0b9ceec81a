import { z } from 'zod';
import { describeZodError } from './errors.js';
import { CONTRACT_VERSION, DEFAULT_MAX_MESSAGE_LENGTH } from './limits.js';

export type LenUnit = 'chars' | 'utf16';

/** Ops a gateway may assume when the descriptor has no `supported_ops` (spec decision 7). */
export const LEGACY_OPS = ['send', 'edit', 'typing', 'follow_up'] as const;

/** ≤ 0, null or garbage → 4096; a positive numeric string ("2000") counts as its number (current §6). */
const maxMessageLength = z.unknown().transform((value) => {
  const number = typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : value;
  return typeof number === 'number' && Number.isFinite(number) && number > 0
    ? Math.floor(number)
    : DEFAULT_MAX_MESSAGE_LENGTH;
});

/**
 * `utf16` counts at least as many units as `chars` for every string, so measuring an unknown
 * future unit as `utf16` can only make chunks shorter, never over a platform's limit.
 */
const lenUnit = z.string().transform((value): LenUnit => (value === 'chars' ? 'chars' : 'utf16'));

function optional<T extends z.ZodType>(schema: T, fallback: z.output<T>) {
  return schema
    .optional()
    .catch(undefined)
    .transform((v) => (v === undefined ? fallback : v));
}

/**
 * CapabilityDescriptor (reference §4.4 plus later additive fields). Required fields must be present;
 * optional ones default; unknown keys are dropped; `max_message_length <= 0` or garbage becomes 4096.
 */
export const CapabilityDescriptorSchema = z.object({
  contract_version: z.number().int(),
  platform: z.string(),
  label: z.string(),
  max_message_length: maxMessageLength,
  supports_draft_streaming: z.boolean(),
  supports_edit: z.boolean(),
  supports_threads: z.boolean(),
  markdown_dialect: z.string(),
  len_unit: lenUnit,
  emoji: optional(z.string(), '\u{1F50C}'),
  platform_hint: optional(z.string(), ''),
  pii_safe: optional(z.boolean(), false),
  supports_context: optional(z.boolean(), false),
  supports_inchannel_continuable: optional(z.boolean(), false),
  supports_block_formatting: optional(z.boolean(), false),
  supported_ops: z.array(z.string()).optional().catch(undefined),
});

export type CapabilityDescriptor = z.output<typeof CapabilityDescriptorSchema>;

export type DescriptorParse = { ok: true; descriptor: CapabilityDescriptor } | { ok: false; error: string };

export function parseDescriptor(value: unknown): DescriptorParse {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, error: 'descriptor must be a JSON object' };
  }
  if (!('max_message_length' in value)) {
    return { ok: false, error: 'max_message_length: required field missing' };
  }
  const parsed = CapabilityDescriptorSchema.safeParse(value);
  return parsed.success
    ? { ok: true, descriptor: parsed.data }
    : { ok: false, error: describeZodError(parsed.error) };
}

/** The ops a gateway may use with this descriptor: the advertised list, else the legacy set. */
export function supportedOps(descriptor: CapabilityDescriptor): readonly string[] {
  return descriptor.supported_ops ?? LEGACY_OPS;
}

export function supportsOp(descriptor: CapabilityDescriptor, op: string): boolean {
  return supportedOps(descriptor).includes(op);
}

/** Code blocks render unless the dialect is plain (reference §4.4). */
export function supportsCodeBlocks(descriptor: CapabilityDescriptor): boolean {
  return descriptor.markdown_dialect !== '' && descriptor.markdown_dialect !== 'plain';
}

/** What the gateway uses before a handshake has completed (reference §4.4). */
export function placeholderDescriptor(platform = 'relay'): CapabilityDescriptor {
  return {
    contract_version: CONTRACT_VERSION,
    platform,
    label: 'Relay',
    max_message_length: DEFAULT_MAX_MESSAGE_LENGTH,
    supports_draft_streaming: false,
    supports_edit: true,
    supports_threads: false,
    markdown_dialect: 'plain',
    len_unit: 'chars',
    emoji: '\u{1F50C}',
    platform_hint: '',
    pii_safe: false,
    supports_context: false,
    supports_inchannel_continuable: false,
    supports_block_formatting: false,
    supported_ops: undefined,
  };
}
