/**
 * Protocol constants and default limits (spec README §4–§5, reference §2–§4).
 * One place so the connector and the gateway can never disagree.
 */

export const CONTRACT_VERSION = 1;

/** Upgrade token lifetime a gateway mints per dial (reference §2.1). */
export const UPGRADE_TOKEN_TTL_SECONDS = 300;
/** Connector tolerance past `exp` (spec decision 1). */
export const UPGRADE_TOKEN_SKEW_SECONDS = 60;
/** Connector refuses tokens whose `exp` is further ahead than this (spec decision 1). */
export const UPGRADE_TOKEN_MAX_TTL_SECONDS = 3600;

/** Delivery signature replay window, inclusive, both directions (reference §3.2). */
export const DELIVERY_REPLAY_WINDOW_SECONDS = 300;
/** How long a gateway remembers delivery ids to answer duplicates (spec decision 4). */
export const DELIVERY_ID_MEMORY_SECONDS = 600;

export const MAX_WS_MESSAGE_BYTES = 1024 * 1024;
/**
 * Deepest nesting of arrays and objects accepted in any JSON we parse from the network. Real frames
 * and bodies nest under 10 levels (a platform's raw payload included); the bound keeps recursive
 * walks of parsed values (validation, serialisation) far from the stack limit.
 */
export const MAX_JSON_DEPTH = 64;
export const MAX_DELIVERY_BODY_BYTES = 1024 * 1024;
export const MAX_OUTBOUND_CONTENT_BYTES = 64 * 1024;
/** Largest `Authorization` value we bother decoding; real tokens are ~120 bytes. */
export const MAX_UPGRADE_TOKEN_CHARS = 4096;

/** Largest media upload, `POST /relay/media` (current §7.3: 25 MB); above it: 413. */
export const MEDIA_MAX_BYTES = 26_214_400;
/** How long a re-hosted media file is served (current §7.3: about an hour). */
export const MEDIA_TTL_MS = 3600_000;
/** Longest `X-Media-Filename` kept (current §7.3). */
export const MEDIA_FILENAME_MAX_CHARS = 255;

export const OUTBOUND_OP_TIMEOUT_MS = 30_000;
export const HANDSHAKE_TIMEOUT_MS = 30_000;
export const ENROLL_HTTP_TIMEOUT_MS = 15_000;
export const DELIVERY_HTTP_TIMEOUT_MS = 10_000;

export const ENROLLMENT_TOKEN_TTL_SECONDS = 24 * 3600;
export const ROTATION_WINDOW_SECONDS = 24 * 3600;

/** Descriptor `max_message_length` used when the connector sends zero, negative or garbage. */
export const DEFAULT_MAX_MESSAGE_LENGTH = 4096;

/** Reconnect policy (spec decision 3). */
export const RECONNECT_BASE_MS = 1_000;
export const RECONNECT_CAP_MS = 30_000;
export const RECONNECT_RESET_AFTER_MS = 60_000;
export const PING_INTERVAL_MS = 30_000;
export const PING_DEAD_AFTER_MS = 60_000;
