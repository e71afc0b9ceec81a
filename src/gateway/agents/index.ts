import type { Logger } from 'pino';
import { CommandAgent } from './command.js';
import { EchoAgent } from './echo.js';
import { OpenAIAgent } from './openai.js';
import type { Agent } from './types.js';

export { CommandAgent, type CommandAgentOptions } from './command.js';
export { EchoAgent } from './echo.js';
export { OpenAIAgent, type OpenAIAgentOptions } from './openai.js';
export * from './types.js';

export type AgentKind = 'echo' | 'openai' | 'command';
export const AGENT_KINDS: readonly AgentKind[] = ['echo', 'openai', 'command'];

export interface AgentConfig {
  kind: AgentKind;
  openai?: { baseUrl?: string; apiKey?: string; model: string };
  command?: string;
}

/** The agent `HERMES_AGENT` names, or an Error saying which setting is missing. */
export function createAgent(config: AgentConfig, log: Logger): Agent {
  switch (config.kind) {
    case 'echo':
      return new EchoAgent();
    case 'openai': {
      const baseUrl = config.openai?.baseUrl?.trim();
      if (!baseUrl) {
        throw new Error(
          'HERMES_AGENT=openai needs OPENAI_BASE_URL: the root of an OpenAI-compatible API, e.g. https://api.openai.com/v1 or http://localhost:11434/v1',
        );
      }
      const model = config.openai?.model?.trim();
      if (!model) {
        throw new Error(
          'HERMES_AGENT=openai needs HERMES_MODEL: the model name to ask for, e.g. gpt-4o-mini',
        );
      }
      const apiKey = config.openai?.apiKey?.trim();
      return new OpenAIAgent({ baseUrl, model, log, ...(apiKey ? { apiKey } : {}) });
    }
    case 'command': {
      const command = config.command?.trim();
      if (!command) {
        throw new Error(
          'HERMES_AGENT=command needs HERMES_AGENT_COMMAND: a program run per turn that reads the conversation as JSON on stdin and prints the reply on stdout',
        );
      }
      return new CommandAgent({ command, log });
    }
    default:
      throw new Error(
        `unknown HERMES_AGENT ${JSON.stringify(String((config as { kind: unknown }).kind))}: use one of ${AGENT_KINDS.join(', ')}`,
      );
  }
}
