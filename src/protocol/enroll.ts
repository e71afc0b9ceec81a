import { z } from 'zod';

/** `/relay/enroll` and `/relay/provision` bodies (reference §5.1–§5.2, spec decision 9). */

// Printable, no whitespace or control characters; may contain ':' (the token splits from the right).
export const GatewayIdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[^\s\p{Cc}]+$/u, 'must be printable with no whitespace');

const endpoint = z
  .string()
  .max(2048)
  .refine((value) => value === '' || isHttpUrl(value), 'must be an http(s) URL or empty')
  .transform((value) => value.replace(/\/+$/, ''));

// `*` is the platform's default route: only an operator may bind it (`connector route add`),
// never a gateway asserting route keys at enroll or provision.
const routeKeys = z
  .array(
    z
      .string()
      .trim()
      .min(1)
      .max(256)
      .refine((key) => key !== '*', 'the default route "*" can only be bound by an operator'),
  )
  .max(1000);

/**
 * Current generation (current §10.2): sent only when set, never as "". Enroll takes them too — our
 * answer to the [unconfirmed] §16.4 (how a gateway with a pinned secret registers its wake URL).
 */
const gatewayDetails = {
  instanceId: z.string().trim().min(1).max(256).optional(),
  wakeUrl: z
    .string()
    .trim()
    .max(2048)
    .refine(isHttpUrl, 'must be an absolute http:// or https:// URL')
    .optional(),
  displayName: z.string().trim().min(1).max(64, 'must be at most 64 characters').optional(),
};

export const EnrollRequestSchema = z.object({
  enrollmentToken: z.string().min(1).max(512),
  gatewayId: GatewayIdSchema,
  gatewayEndpoint: endpoint.optional(),
  routeKeys: routeKeys.optional(),
  ...gatewayDetails,
});

export const EnrollResponseSchema = z.object({
  secret: z.string().min(1),
  deliveryKey: z.string(),
  tenant: z.string(),
  gatewayId: z.string(),
});

export const ProvisionRequestSchema = z.object({
  gatewayId: GatewayIdSchema,
  platform: z.string().max(128).default('relay'),
  botId: z.string().max(256).default(''),
  gatewayEndpoint: endpoint.default(''),
  routeKeys: routeKeys.default([]),
  ...gatewayDetails,
});

export const ProvisionResponseSchema = EnrollResponseSchema.extend({
  routeKeys: z.array(z.string()).default([]),
});

/**
 * A further platform of a multi-platform boot (current §10.2): the identity is added under the
 * same gateway, and no credentials are returned — the boot keeps the first platform's.
 */
export const ProvisionWithheldSchema = z.object({
  secretIssued: z.literal(false),
  tenant: z.string(),
  gatewayId: z.string(),
  routeKeys: z.array(z.string()).default([]),
});
export type ProvisionWithheld = z.output<typeof ProvisionWithheldSchema>;

export const ErrorBodySchema = z.object({ error: z.string() });

export type EnrollRequest = z.output<typeof EnrollRequestSchema>;
export type EnrollResponse = z.output<typeof EnrollResponseSchema>;
export type ProvisionRequest = z.output<typeof ProvisionRequestSchema>;
export type ProvisionResponse = z.output<typeof ProvisionResponseSchema>;
export type ErrorBody = z.output<typeof ErrorBodySchema>;

/** `GATEWAY_RELAY_ROUTE_KEYS`: comma-separated, trimmed, empties dropped (reference §5.4). */
export function parseRouteKeys(value: string | readonly string[] | undefined | null): string[] {
  const items = typeof value === 'string' ? value.split(',') : (value ?? []);
  return items.map((item) => String(item).trim()).filter((item) => item !== '');
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}
