/**
 * `hermes-relay`: the package as a library (docs/embedding.md).
 *
 * Everything an embedder reaches for, in one import: the wire contract (`hermes-relay/protocol`:
 * zod schemas and types for every frame and body, framing, session keys, lengths, the splitter),
 * the connector (`hermes-relay/connector`: `startConnector`, its configuration, store, admin
 * helpers and the platform adapter contract) and the gateway (`hermes-relay/gateway`:
 * `startGateway`, its configuration, enrollment and the agent contract). The sub-paths export the
 * same names in smaller sets; `hermes-relay/protocol` loads no server code and no native module.
 */

export * from './connector/index.js';
export * from './gateway/index.js';
export * from './protocol/index.js';
