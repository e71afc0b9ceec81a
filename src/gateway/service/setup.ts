import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Document, isMap, isScalar, parseDocument } from 'yaml';
import { writeFileAtomic } from '../../home/atomic-file.js';
import { AGENT_KINDS, type AgentKind, CONFIG_FILE_NAME } from '../../home/config.js';
import { ENV_FILE_NAME, parseEnvFile, saveEnvValues } from '../../home/env-file.js';

/**
 * `hermes gateway setup`: non-secret settings the config loader reads from `config.yaml`
 * (`gateway.relay_url`, `agent.model`) are merged into it, keeping every other key and comment.
 * Settings the loader reads only from the environment (`HERMES_AGENT`, `OPENAI_BASE_URL`,
 * `HERMES_AGENT_COMMAND`) and every secret (`OPENAI_API_KEY`) go to `.env` (0600). A `.env`
 * assignment that would shadow a value just written to config.yaml (the environment wins over
 * config.yaml) is removed from `.env`.
 */

export const DEFAULT_SETUP_RELAY_URL = 'http://127.0.0.1:8700';

export interface SetupValues {
  relayUrl: string;
  agent: AgentKind;
  model?: string | undefined;
  baseUrl?: string | undefined;
  command?: string | undefined;
  /** Secret: only ever written to `.env`. */
  apiKey?: string | undefined;
}

export class SetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SetupError';
  }
}

/** A relay URL the gateway can dial: ws(s):// or http(s)://. Returns an error message or undefined. */
export function relayUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    return `not a URL: ${JSON.stringify(value)}`;
  }
  if (!['ws:', 'wss:', 'http:', 'https:'].includes(url.protocol)) {
    return `the relay URL must start with ws://, wss://, http:// or https:// (got ${url.protocol}//)`;
  }
  return undefined;
}

export function httpUrlProblem(value: string): string | undefined {
  try {
    const url = new URL(value.trim());
    return url.protocol === 'http:' || url.protocol === 'https:' ? undefined : 'must be an http(s):// URL';
  } catch {
    return `not a URL: ${JSON.stringify(value)}`;
  }
}

export function isAgentKind(value: string): value is AgentKind {
  return (AGENT_KINDS as readonly string[]).includes(value);
}

/** What setup can show as defaults: current config.yaml and `.env` values (secrets only as "set"). */
export interface ExistingSettings {
  relayUrl: string | undefined;
  model: string | undefined;
  agent: string | undefined;
  baseUrl: string | undefined;
  command: string | undefined;
  apiKeySet: boolean;
  enrolled: boolean;
}

function scalarAt(doc: Document | undefined, path: string[]): string | undefined {
  if (!doc) return undefined;
  const node = doc.getIn(path, true);
  if (!isScalar(node)) return undefined;
  const value = node.value;
  return typeof value === 'string' || typeof value === 'number'
    ? String(value).trim() || undefined
    : undefined;
}

function readEnvValues(home: string): Record<string, string> {
  try {
    return parseEnvFile(readFileSync(join(home, ENV_FILE_NAME), 'utf8'));
  } catch {
    return Object.create(null) as Record<string, string>;
  }
}

/** Parse config.yaml for merging; undefined when it does not exist. */
function loadConfigDocument(path: string): Document | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SetupError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const doc = parseDocument(text);
  const problem = doc.errors[0];
  if (problem) {
    throw new SetupError(
      `${path} is not valid YAML (${problem.message.split('\n')[0]}); fix it first, setup merges into it`,
    );
  }
  const root = doc.contents;
  if (root !== null && !isMap(root) && !(isScalar(root) && root.value === null)) {
    throw new SetupError(`${path}: the top level must be a mapping; fix it first, setup merges into it`);
  }
  return doc;
}

export function readExistingSettings(home: string): ExistingSettings {
  let doc: Document | undefined;
  try {
    doc = loadConfigDocument(join(home, CONFIG_FILE_NAME));
  } catch {
    doc = undefined;
  }
  const env = readEnvValues(home);
  return {
    relayUrl: scalarAt(doc, ['gateway', 'relay_url']) ?? env.GATEWAY_RELAY_URL,
    model: scalarAt(doc, ['agent', 'model']) ?? env.HERMES_MODEL,
    agent: env.HERMES_AGENT,
    baseUrl: env.OPENAI_BASE_URL,
    command: env.HERMES_AGENT_COMMAND,
    apiKeySet: Boolean(env.OPENAI_API_KEY?.trim()),
    enrolled: Boolean(env.GATEWAY_RELAY_SECRET?.trim()),
  };
}

export interface SetupResult {
  configPath: string;
  envPath: string;
  configKeys: string[];
  envKeys: string[];
  removedEnvKeys: string[];
}

function setIn(doc: Document, path: [string, string], value: string): void {
  const [section] = path;
  const parent = doc.get(section, true);
  if (parent !== undefined && !(isScalar(parent) && parent.value === null) && !isMap(parent)) {
    throw new SetupError(`'${section}' in config.yaml must be a mapping; fix it first, setup merges into it`);
  }
  if (parent !== undefined && isScalar(parent)) doc.delete(section);
  doc.setIn(path, value);
}

/** Merge `values` into `$home/config.yaml` and `$home/.env` (see the module comment). */
export function writeSetup(home: string, values: SetupValues): SetupResult {
  const configPath = join(home, CONFIG_FILE_NAME);
  const envPath = join(home, ENV_FILE_NAME);
  const existing = loadConfigDocument(configPath);
  const doc = existing ?? new Document({});
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    doc.contents = doc.createNode({});
  }

  const configKeys: string[] = [];
  setIn(doc, ['gateway', 'relay_url'], values.relayUrl.trim());
  configKeys.push('gateway.relay_url');
  if (values.model?.trim()) {
    setIn(doc, ['agent', 'model'], values.model.trim());
    configKeys.push('agent.model');
  }

  let mode = 0o600;
  if (existing) {
    try {
      mode = statSync(configPath).mode & 0o777;
    } catch {
      // keep 0600
    }
  }
  writeFileAtomic(configPath, doc.toString(), mode);

  const currentEnv = readEnvValues(home);
  const envValues: Record<string, string | null> = { HERMES_AGENT: values.agent };
  if (values.agent === 'openai' && values.baseUrl?.trim()) envValues.OPENAI_BASE_URL = values.baseUrl.trim();
  if (values.agent === 'command' && values.command?.trim())
    envValues.HERMES_AGENT_COMMAND = values.command.trim();
  if (values.apiKey?.trim()) envValues.OPENAI_API_KEY = values.apiKey.trim();
  const removedEnvKeys: string[] = [];
  // The environment wins over config.yaml: a .env copy would silently shadow what we just wrote.
  if (currentEnv.GATEWAY_RELAY_URL !== undefined) removedEnvKeys.push('GATEWAY_RELAY_URL');
  if (configKeys.includes('agent.model') && currentEnv.HERMES_MODEL !== undefined)
    removedEnvKeys.push('HERMES_MODEL');
  for (const key of removedEnvKeys) envValues[key] = null;
  saveEnvValues(envPath, envValues);

  return {
    configPath,
    envPath,
    configKeys,
    envKeys: Object.keys(envValues).filter((key) => envValues[key] !== null),
    removedEnvKeys,
  };
}
