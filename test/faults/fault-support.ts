import { readFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { hermes } from '../support/processes.js';

/**
 * What the fault cases share: the web-chat visitor that drives events, the agent script that
 * records what reached the agent, and the tally that compares the two.
 */

export { sleep };

// ---------------------------------------------------------------------------------------------
// A web-chat visitor that keeps going when the connector dies under it

export class Visitor {
  private ws: WebSocket | undefined;
  /** Web-chat message id → text, for the visitor's own messages. */
  private readonly ids = new Map<string, string>();
  /** Texts the connector acknowledged (`ack` = committed to the outbox). */
  readonly acked = new Set<string>();
  readonly attempted: string[] = [];

  constructor(
    private readonly baseUrl: string,
    readonly room: string,
    readonly visitor: string,
  ) {}

  get chatId(): string {
    return `wc-${this.room}-${this.visitor}`;
  }

  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  async connect(): Promise<void> {
    const ws = new WebSocket(
      `${this.baseUrl.replace(/^http/, 'ws')}/chat/ws?room=${this.room}&visitor=${this.visitor}`,
    );
    this.ws = ws;
    ws.on('error', () => undefined);
    ws.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString('utf8')) as {
        type: string;
        message?: { id: string; role: string; text: string };
        message_id?: string;
      };
      if (frame.type === 'message' && frame.message?.role === 'user')
        this.ids.set(frame.message.id, frame.message.text);
      if (frame.type === 'ack' && frame.message_id !== undefined) {
        const text = this.ids.get(frame.message_id);
        if (text !== undefined) this.acked.add(text);
      }
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('close', () => reject(new Error(`web chat socket for ${this.visitor} closed before opening`)));
    });
  }

  say(text: string): boolean {
    if (!this.open) return false;
    this.attempted.push(text);
    this.ws?.send(JSON.stringify({ type: 'message', text }));
    return true;
  }

  close(): void {
    this.ws?.terminate();
  }
}

// ---------------------------------------------------------------------------------------------
// What the agent saw

export interface AgentLine {
  session: string;
  chat: string;
  text: string;
}

export const AGENT_SCRIPT = `import { appendFileSync } from 'node:fs';
let input = '';
process.stdin.on('data', (chunk) => (input += chunk));
process.stdin.on('end', () => {
  const { session_key, event } = JSON.parse(input);
  // One write per message: appends of a few hundred bytes are not interleaved.
  appendFileSync(process.env.FAULT_AGENT_LOG, JSON.stringify({ session: session_key, chat: event.source.chat_id, text: event.text }) + '\\n');
  process.stdout.write('ok ' + event.text.slice(0, 40));
});
`;

export interface Tally {
  sent: number;
  delivered: number;
  duplicates: number;
  lost: number;
  lostTexts: string[];
  orderViolations: string[];
}

/** Count the agent's view of `expected` (texts sent and, where it matters, acknowledged). */
export function tally(lines: readonly AgentLine[], prefix: string, expected: Iterable<string>): Tally {
  const counts = new Map<string, number>();
  const byChat = new Map<string, number[]>();
  for (const line of lines) {
    if (!line.text.startsWith(prefix)) continue;
    counts.set(line.text, (counts.get(line.text) ?? 0) + 1);
    const index = Number(/-m(\d+)$/.exec(line.text)?.[1] ?? -1);
    const list = byChat.get(line.chat) ?? [];
    list.push(index);
    byChat.set(line.chat, list);
  }
  const want = [...expected];
  const lostTexts = want.filter((text) => !counts.has(text));
  let duplicates = 0;
  for (const count of counts.values()) duplicates += count - 1;
  const orderViolations: string[] = [];
  for (const [chat, indexes] of byChat) {
    for (let i = 1; i < indexes.length; i++) {
      if ((indexes[i] ?? 0) <= (indexes[i - 1] ?? 0)) {
        orderViolations.push(`${chat}: ${indexes.join(',')}`);
        break;
      }
    }
  }
  return {
    sent: want.length,
    delivered: want.filter((text) => counts.has(text)).length,
    duplicates,
    lost: lostTexts.length,
    lostTexts,
    orderViolations,
  };
}

export function report(name: string, t: Tally, extra = ''): void {
  console.log(
    `[fault] ${name}: sent ${t.sent}, delivered to agent ${t.delivered}, duplicates ${t.duplicates}, lost ${t.lost}` +
      `${t.orderViolations.length ? `, order broken in ${t.orderViolations.length} sessions` : ', order kept'}` +
      (extra ? `; ${extra}` : ''),
  );
}

// ---------------------------------------------------------------------------------------------

/** The agent's view: one JSON line per message the agent was given (see AGENT_SCRIPT). */
export function readAgentLines(path: string): AgentLine[] {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as AgentLine);
}

/** Sum of a Prometheus metric over all its label sets, from a connector's `/metrics`. */
export async function metricSum(baseUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  let sum = 0;
  for (const match of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'gm')))
    sum += Number(match[1]);
  return sum;
}

/**
 * `hermes gateway enroll` a gateway home for a fault case (the command agent recording to
 * `agentLog`, its receiver on `inboundPort`) and return the environment for `hermes gateway run`:
 * the credentials then come from the home's `.env`, not from blanks in this environment.
 */
export async function enrollFaultGateway(options: {
  home: string;
  accessToken: string;
  enrollmentToken: string;
  connectorUrl: string;
  gatewayId: string;
  inboundPort: number;
  agentScript: string;
  agentLog: string;
  extra?: NodeJS.ProcessEnv;
}): Promise<NodeJS.ProcessEnv> {
  const blanks = [
    'GATEWAY_RELAY_URL',
    'GATEWAY_RELAY_ID',
    'GATEWAY_RELAY_SECRET',
    'GATEWAY_RELAY_DELIVERY_KEY',
  ];
  const env: NodeJS.ProcessEnv = {
    HERMES_HOME: options.home,
    HERMES_PORTAL_TOKEN: options.accessToken,
    GATEWAY_RELAY_INBOUND_HOST: '127.0.0.1',
    GATEWAY_RELAY_INBOUND_PORT: String(options.inboundPort),
    HERMES_AGENT: 'command',
    HERMES_AGENT_COMMAND: `${process.execPath} ${options.agentScript}`,
    FAULT_AGENT_LOG: options.agentLog,
    ...options.extra,
    ...Object.fromEntries(blanks.map((key) => [key, ''])),
  };
  const enrolled = await hermes(
    [
      'gateway',
      'enroll',
      '--token',
      options.enrollmentToken,
      '--connector-url',
      options.connectorUrl,
      '--gateway-id',
      options.gatewayId,
    ],
    env,
  );
  if (enrolled.code !== 0) throw new Error(`gateway enroll failed (${enrolled.code}): ${enrolled.stderr}`);
  for (const key of blanks) delete env[key];
  return env;
}

/**
 * The fault suite raises the web chat's per-socket rate limit (`RELAY_WEBCHAT_RATE_LIMIT`, default
 * 10 messages per 10 s) so visitors can send a round every ROUND_MS instead of every 1.15 s: the
 * suite exercises crashes and hostile input, not the rate limit, which has its own tests.
 */
export const WEBCHAT_RATE_LIMIT = '50/10';
export const ROUND_MS = 300;

/**
 * A TCP pass-through on 127.0.0.1 to `127.0.0.1:<port>` that holds every chunk going upstream for
 * `delayMs` (in order), so a gateway's acknowledgements reach the connector late and a replay is
 * slow enough to be interrupted half-way. Each connection dials the port anew, so a restarted
 * connector on the same port is reached again.
 */
export async function startDelayProxy(
  port: number,
  delayMs: number,
): Promise<{ url: string; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createNetServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    let queue = Promise.resolve();
    client.on('data', (chunk: Buffer) => {
      queue = queue.then(async () => {
        await sleep(delayMs);
        if (!upstream.destroyed) upstream.write(chunk);
      });
    });
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
