/** Header names, paths and close codes that appear on the wire (reference §2–§5, spec decision 4). */

export const HEADER_TIMESTAMP = 'x-relay-timestamp';
export const HEADER_SIGNATURE = 'x-relay-signature';
/** Outside the signature; reference gateways ignore it (spec decision 4). */
export const HEADER_DELIVERY_ID = 'x-relay-delivery-id';
/** Outside the signature; lets a load balancer pin a session to one gateway instance. */
export const HEADER_SESSION_KEY = 'x-relay-session-key';

export const RELAY_WS_PATH = '/relay';
export const ENROLL_PATH = '/relay/enroll';
export const PROVISION_PATH = '/relay/provision';
/** Appended to the gateway endpoint string as given (reference §3.1). */
export const INTERRUPT_DELIVERY_SUFFIX = '/interrupt';

export const POLICY_PATH = '/relay/policy';
/** The media re-host plane (current §7.3): `POST` uploads, `GET {MEDIA_PATH}/{id}` downloads. */
export const MEDIA_PATH = '/relay/media';
/** The upload's file name (current §7.3). */
export const HEADER_MEDIA_FILENAME = 'x-media-filename';
/** The management plane (current §11.2); authenticated like `/relay/policy`. */
export const MANAGE_PATH_PREFIX = '/manage';

/** WebSocket close code for a missing, invalid, expired or revoked credential (reference §2.3). */
export const CLOSE_UNAUTHORIZED = 4401;
/**
 * `expired`: a valid signature whose `exp` passed — a current gateway re-dials with a fresh token and
 * never treats it as revocation. `unauthorized`: everything else, revocation included, which a
 * current gateway latches on the second strike (current §8).
 */
export type UnauthorizedCloseReason = 'unauthorized' | 'expired';

/** Exact receiver response bodies (reference §3.3). */
export const RECEIVER_ERRORS = {
  noKey: 'no delivery key configured',
  badSignature: 'invalid delivery signature',
  badJson: 'invalid JSON body',
  missingEvent: 'missing event',
} as const;

/**
 * Gateway-side outbound failures never throw; these are the reference result errors (June §4.5,
 * current §3.5). Ambiguous (the frame was written, only the answer is missing): `timedOut` and
 * `closedAfterWrite`.
 */
export const OUTBOUND_ERRORS = {
  notConnected: 'relay transport not connected',
  timedOut: 'relay outbound timed out',
  closed: 'relay transport closed',
  /** Written, then the socket was lost (the reference does not mark this one ambiguous). */
  connectionLost: 'relay transport connection lost',
  /** Written, then a planned stop failed the waiter. */
  closedAfterWrite: 'relay send failed: relay transport closed',
  /** Prefix of the result when writing the frame itself failed. */
  sendFailed: 'relay send failed',
} as const;
