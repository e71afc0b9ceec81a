/**
 * `hermes-relay/gateway`: run an agent gateway inside your own process (docs/embedding.md).
 *
 * The public surface, and only it:
 * - start and stop a gateway: `startGateway` (it dials the connector, receives deliveries, runs
 *   agent turns and drains on stop), `GatewayStartupError`;
 * - its configuration from a home folder and the environment: `loadGatewayConfig`,
 *   `GatewayConfigError`, `resolveHome`, `ensureHome`;
 * - enrollment: `enrollGateway` (redeem a single-use token), `defaultGatewayId`;
 * - agents: the `Agent` contract and its turn types, `createAgent` (what `HERMES_AGENT` picks),
 *   `EchoAgent`, `OpenAIAgent`, `CommandAgent`, `abortError`;
 * - `createLogger` and `VERSION`.
 * Everything else under `src/gateway` is internal and may change in any release.
 */

export type { Logger } from 'pino';
export { createLogger } from '../cli/logger.js';
export { VERSION } from '../cli/version.js';
export {
  type AgentKind,
  type GatewayConfig,
  GatewayConfigError,
  type LoadGatewayConfigOptions,
  loadGatewayConfig,
} from '../home/config.js';
export { ensureHome, type ResolvedHome, type ResolveHomeOptions, resolveHome } from '../home/home.js';
export {
  type Agent,
  type AgentAction,
  type AgentConfig,
  type AgentTurnInput,
  type AgentTurnResult,
  abortError,
  CommandAgent,
  type CommandAgentOptions,
  type ConversationMessage,
  createAgent,
  EchoAgent,
  OpenAIAgent,
  type OpenAIAgentOptions,
} from './agents/index.js';
export { defaultGatewayId, type EnrollOptions, type EnrollResult, enrollGateway } from './enroll.js';
export {
  GatewayStartupError,
  type RunGatewayOptions,
  type RunningGateway,
  type StopKind,
  startGateway,
} from './runner.js';
