import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandAgent } from '../../src/gateway/agents/command.js';
import { ECHO_HELP, EchoAgent, MAX_SLOW_SECONDS, parseSlow } from '../../src/gateway/agents/echo.js';
import { createAgent } from '../../src/gateway/agents/index.js';
import { OpenAIAgent, SseParser } from '../../src/gateway/agents/openai.js';
import type { AgentTurnInput, ConversationMessage } from '../../src/gateway/agents/types.js';
import { MessageEventSchema } from '../../src/protocol/index.js';
import { tempDir, until } from '../support/processes.js';

const log = pino({ level: 'silent' });

function turn(text: string, extra: Partial<AgentTurnInput> = {}): AgentTurnInput {
  return {
    sessionKey: 'agent:main:webchat:dm:c1',
    history: [],
    message: { role: 'user', content: text },
    event: MessageEventSchema.parse({ text, source: { platform: 'webchat', chat_id: 'c1', user_id: 'u1' } }),
    platformHint: 'You are chatting on the web chat.',
    signal: new AbortController().signal,
    ...extra,
  };
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the promise to reject');
}

/** Alive and not a zombie (PID 1 of a container may never reap the orphans it inherits). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  if (!existsSync('/proc/self/stat')) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).charAt(0);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
describe('EchoAgent', () => {
  const agent = new EchoAgent();

  it('echoes the text', async () => {
    expect(agent.name).toBe('echo');
    expect(await agent.run(turn('hello there'))).toEqual({ text: 'echo: hello there' });
    expect((await agent.run(turn('   '))).text).toMatch(/^echo: /);
  });

  it('explains itself and how to configure a real model on /help and help', async () => {
    for (const text of ['/help', 'help', 'HELP', '/help@hermes_bot']) {
      const { text: reply } = await agent.run(turn(text));
      expect(reply).toBe(ECHO_HELP);
    }
    for (const needle of [
      'HERMES_AGENT=openai',
      'OPENAI_BASE_URL',
      'OPENAI_API_KEY',
      'HERMES_MODEL',
      'HERMES_AGENT=command',
      'HERMES_AGENT_COMMAND',
    ]) {
      expect(ECHO_HELP).toContain(needle);
    }
    expect((await agent.run(turn('helpful'))).text).toBe('echo: helpful');
  });

  it('parses /slow N text, clamping N to 30 seconds', () => {
    expect(parseSlow('/slow 3 a b')).toEqual({ seconds: 3, text: 'a b' });
    expect(parseSlow('/slow 0.5 x')).toEqual({ seconds: 0.5, text: 'x' });
    expect(parseSlow('/slow 999 x')?.seconds).toBe(MAX_SLOW_SECONDS);
    expect(parseSlow('/slow words only')?.text).toBe('words only');
    expect(parseSlow('/slowpoke')).toBeUndefined();
    expect(parseSlow('hello /slow 3')).toBeUndefined();
  });

  it('/slow streams the echo word by word through onProgress', async () => {
    const progress: string[] = [];
    const result = await agent.run(
      turn('/slow 0.2 one two three', { onProgress: (text) => progress.push(text) }),
    );
    expect(progress).toEqual(['echo: one', 'echo: one two', 'echo: one two three']);
    expect(result.text).toBe('echo: one two three');
  });

  it('/slow stops on abort with an AbortError', async () => {
    const controller = new AbortController();
    const progress: string[] = [];
    const error = await rejection(
      agent.run(
        turn('/slow 2 alpha beta gamma delta', {
          signal: controller.signal,
          onProgress: (text) => {
            progress.push(text);
            controller.abort();
          },
        }),
      ),
    );
    expect(error.name).toBe('AbortError');
    expect(progress).toEqual(['echo: alpha']);
  });

  it('rejects at once when the signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    expect((await rejection(agent.run(turn('hi', { signal: controller.signal })))).name).toBe('AbortError');
  });
});

// ---------------------------------------------------------------------------------------------
describe('SseParser', () => {
  const stream =
    ': keep-alive comment\r\n' +
    'data: {"a":"Hé"}\r\n\r\n' +
    'event: message\nid: 7\ndata: {"a":\ndata: "wörld 🙂"}\n\n' +
    'data: {"b":\r\ndata: 1}\r\n\r\n' +
    'data: [DONE]\r\r';
  const expected = ['{"a":"Hé"}', '{"a":\n"wörld 🙂"}', '{"b":\n1}', '[DONE]'];

  function parseBytes(pieces: Uint8Array[]): string[] {
    const parser = new SseParser();
    const decoder = new TextDecoder();
    const out: string[] = [];
    for (const piece of pieces) out.push(...parser.push(decoder.decode(piece, { stream: true })));
    out.push(...parser.push(decoder.decode()), ...parser.end());
    return out;
  }

  it('gives the same events however the bytes are split (two and three pieces)', () => {
    const bytes = new TextEncoder().encode(stream);
    for (let i = 0; i <= bytes.length; i++) {
      expect(parseBytes([bytes.subarray(0, i), bytes.subarray(i)])).toEqual(expected);
    }
    for (let i = 0; i <= bytes.length; i += 3) {
      for (let j = i; j <= bytes.length; j += 5) {
        expect(parseBytes([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)])).toEqual(expected);
      }
    }
    expect(parseBytes(Array.from(bytes, (b) => Uint8Array.of(b)))).toEqual(expected);
  });

  it('dispatches a last event that lacks its blank line at the end of the stream', () => {
    const parser = new SseParser();
    expect(parser.push('data: one\n\ndata: two')).toEqual(['one']);
    expect(parser.end()).toEqual(['two']);
  });
});

// ---------------------------------------------------------------------------------------------
interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: unknown;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

class FakeOpenAI {
  readonly requests: Recorded[] = [];
  handler: Handler = (_req, res) => {
    res.end();
  };
  readonly #server: Server;
  url = '';

  constructor() {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // keep the text
        }
        this.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        void this.handler(req, res);
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    const { port } = this.#server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function sse(chunks: object[]): string {
  return `${chunks.map((chunk) => `data: ${JSON.stringify(chunk)}\n\n`).join('')}data: [DONE]\n\n`;
}
const delta = (content: string) => ({ choices: [{ index: 0, delta: { content } }] });

describe('OpenAIAgent', () => {
  const fake = new FakeOpenAI();
  const apiKey = 'sk-test-SECRET-key-0123456789';
  beforeAll(() => fake.start());
  afterAll(() => fake.stop());

  const agent = (extra: Partial<ConstructorParameters<typeof OpenAIAgent>[0]> = {}) =>
    new OpenAIAgent({ baseUrl: `${fake.url}/v1/`, apiKey, model: 'test-model', log, ...extra });

  it('streams SSE split at awkward byte boundaries and sends model, history and key', async () => {
    const body =
      sse([{ choices: [{ index: 0, delta: { role: 'assistant' } }] }, delta('Hé'), delta('llo, ')]) // one chunk, several events
        .replace('data: [DONE]\n\n', '') +
      ': a comment line\r\n' +
      `data: {"choices":[{"index":0,\r\ndata: "delta":{"content":"wörld 🙂"}}]}\r\n\r\n` + // multi-line event
      `data: ${JSON.stringify(delta('!'))}\n\n` +
      `data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n` +
      'data: [DONE]\n\n';
    const bytes = Buffer.from(body, 'utf8');
    const e = bytes.indexOf(Buffer.from('é')) + 1; // inside the 2-byte é
    const emoji = bytes.indexOf(Buffer.from('🙂'));
    const cuts = [0, 17, e, emoji + 1, emoji + 3, bytes.length - 4, bytes.length];
    fake.handler = async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
      for (let i = 0; i + 1 < cuts.length; i++) {
        res.write(bytes.subarray(cuts[i], cuts[i + 1]));
        await pause(5);
      }
      res.end();
    };
    const history: ConversationMessage[] = [
      { role: 'user', content: 'earlier question' },
      { role: 'assistant', content: 'earlier answer' },
    ];
    const progress: string[] = [];
    const result = await agent().run(
      turn('new question', { history, onProgress: (text) => progress.push(text) }),
    );
    expect(result.text).toBe('Héllo, wörld 🙂!');
    expect(progress.at(-1)).toBe('Héllo, wörld 🙂!');
    expect(progress.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < progress.length; i++) {
      expect(progress[i]?.startsWith(progress[i - 1] ?? '\u0000')).toBe(true);
    }
    expect(progress.join('')).not.toContain('\uFFFD');

    const request = fake.requests.at(-1);
    expect(request?.method).toBe('POST');
    expect(request?.url).toBe('/v1/chat/completions');
    expect(request?.headers.authorization).toBe(`Bearer ${apiKey}`);
    expect(request?.headers['content-type']).toMatch(/application\/json/);
    const sent = request?.body as { model: string; stream: boolean; messages: ConversationMessage[] };
    expect(sent.model).toBe('test-model');
    expect(sent.stream).toBe(true);
    expect(sent.messages[0]?.role).toBe('system');
    expect(sent.messages[0]?.content).toContain('You are chatting on the web chat.');
    expect(sent.messages.slice(1)).toEqual([...history, { role: 'user', content: 'new question' }]);
  });

  it('sends no Authorization without a key and trims history to maxHistory', async () => {
    fake.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(sse([delta('ok')]));
    };
    const history: ConversationMessage[] = ['a', 'b', 'c', 'd'].map((content) => ({ role: 'user', content }));
    const result = await agent({ apiKey: undefined, maxHistory: 2 }).run(turn('e', { history }));
    expect(result.text).toBe('ok');
    const request = fake.requests.at(-1);
    expect(request?.headers.authorization).toBeUndefined();
    const sent = request?.body as { messages: ConversationMessage[] };
    expect(sent.messages.map((m) => m.content).slice(1)).toEqual(['c', 'd', 'e']);
  });

  it('accepts a non-streaming JSON answer', async () => {
    fake.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: 'x',
          choices: [
            { index: 0, message: { role: 'assistant', content: 'plain answer' }, finish_reason: 'stop' },
          ],
        }),
      );
    };
    const progress: string[] = [];
    const result = await agent().run(turn('q', { onProgress: (t) => progress.push(t) }));
    expect(result.text).toBe('plain answer');
  });

  it('accepts a JSON answer sent without any content type', async () => {
    fake.handler = (_req, res) => {
      res.removeHeader('content-type');
      res.writeHead(200);
      res.end(JSON.stringify({ choices: [{ message: { content: 'untyped answer' } }] }));
    };
    expect((await agent().run(turn('q'))).text).toBe('untyped answer');
  });

  for (const [status, upstream] of [
    [401, `Incorrect API key provided: ${apiKey}.`],
    [500, 'The server had an error while processing your request'],
  ] as const) {
    it(`rejects HTTP ${status} with the status and upstream message, never the key`, async () => {
      fake.handler = (_req, res) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: upstream, type: 'x', code: null } }));
      };
      const error = await rejection(agent().run(turn('q')));
      expect(error.name).not.toBe('AbortError');
      expect(error.message).toContain(String(status));
      expect(error.message).toContain(upstream.replace(apiKey, '').slice(0, 20));
      expect(error.message).not.toContain(apiKey);
    });
  }

  it('rejects an error event inside the stream with its message', async () => {
    fake.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(
        `data: ${JSON.stringify(delta('partial'))}\n\ndata: {"error":{"message":"context length exceeded"}}\n\n`,
      );
    };
    const error = await rejection(agent().run(turn('q')));
    expect(error.message).toContain('context length exceeded');
  });

  it('rejects an empty reply with a clear message', async () => {
    fake.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(sse([{ choices: [{ index: 0, delta: {}, finish_reason: 'content_filter' }] }]));
    };
    const error = await rejection(agent().run(turn('q')));
    expect(error.message).toMatch(/empty reply.*content_filter/);
  });

  it('aborts mid-stream with an AbortError and the server sees the connection close', async () => {
    let closed = false;
    fake.handler = (_req, res) => {
      res.on('close', () => {
        closed = true;
      });
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify(delta('first words'))}\n\n`);
      // …and never finishes.
    };
    const controller = new AbortController();
    const progress: string[] = [];
    const error = await rejection(
      agent().run(
        turn('q', {
          signal: controller.signal,
          onProgress: (text) => {
            progress.push(text);
            controller.abort();
          },
        }),
      ),
    );
    expect(error.name).toBe('AbortError');
    expect(progress).toEqual(['first words']);
    await until(() => closed || undefined, 5000, 'the server to see the connection close');
  });

  it('rejects with a readable message when the server cannot be reached', async () => {
    const gone = createServer();
    await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
    const { port } = gone.address() as AddressInfo;
    await new Promise<void>((resolve) => gone.close(() => resolve()));
    const error = await rejection(
      new OpenAIAgent({ baseUrl: `http://127.0.0.1:${port}/v1`, apiKey, model: 'm', log }).run(turn('q')),
    );
    expect(error.name).not.toBe('AbortError');
    expect(error.message).toContain(`127.0.0.1:${port}`);
    expect(error.message).toMatch(/could not reach/);
    expect(error.message).not.toContain(apiKey);
  });

  it('times out when the server goes silent', async () => {
    fake.handler = () => {
      // never answers
    };
    const error = await rejection(agent({ timeoutMs: 300 }).run(turn('q')));
    expect(error.name).not.toBe('AbortError');
    expect(error.message).toMatch(/did not answer within 300 ms/);
  });
});

// ---------------------------------------------------------------------------------------------
describe('CommandAgent', () => {
  const dir = tempDir('command-agent');
  afterAll(() => dir.remove());
  const node = JSON.stringify(process.execPath);

  function script(name: string, source: string): string {
    const path = join(dir.path, name);
    writeFileSync(path, source);
    return `${node} ${JSON.stringify(path)}`;
  }

  const readStdin = `
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  `;

  it('sends the conversation as JSON on stdin and replies with trimmed stdout', async () => {
    const saved = join(dir.path, 'stdin.json');
    const command = script(
      'reply.mjs',
      `import { writeFileSync } from 'node:fs';
      ${readStdin}
      writeFileSync(${JSON.stringify(saved)}, JSON.stringify(input));
      process.stdout.write('\\n  you said: ' + input.messages.at(-1).content + ' ✓\\n\\n');`,
    );
    const agent = new CommandAgent({ command, log });
    expect(agent.name).toBe('command');
    const history: ConversationMessage[] = [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello' },
    ];
    const result = await agent.run(turn('what now?', { history }));
    expect(result.text).toBe('you said: what now? ✓');
    const input = JSON.parse(readFileSync(saved, 'utf8'));
    expect(input.session_key).toBe('agent:main:webchat:dm:c1');
    expect(input.messages).toEqual([...history, { role: 'user', content: 'what now?' }]);
    expect(input.event.text).toBe('what now?');
    expect(input.event.source.platform).toBe('webchat');
    expect(input.event.source.chat_id).toBe('c1');
  });

  it('copes with a program that never reads its stdin', async () => {
    const history: ConversationMessage[] = Array.from({ length: 40 }, (_, i) => ({
      role: 'user',
      content: `${i} ${'x'.repeat(50_000)}`,
    }));
    const agent = new CommandAgent({ command: 'echo "not listening"', log });
    expect((await agent.run(turn('q', { history }))).text).toBe('not listening');
  });

  it('rejects a non-zero exit with the code and the last stderr line', async () => {
    const command = script(
      'fail.mjs',
      `process.stderr.write('some noise\\nboom: the model is unavailable\\n\\n'); process.exit(3);`,
    );
    const error = await rejection(new CommandAgent({ command, log }).run(turn('q')));
    expect(error.name).not.toBe('AbortError');
    expect(error.message).toBe('agent command failed (exit 3): boom: the model is unavailable');
  });

  it('rejects a program that prints nothing', async () => {
    const error = await rejection(new CommandAgent({ command: 'true', log }).run(turn('q')));
    expect(error.message).toMatch(/no reply/);
  });

  it('caps stdout at 1 MiB', async () => {
    const command = script('big.mjs', `process.stdout.write('a'.repeat(3 * 1024 * 1024));`);
    const result = await new CommandAgent({ command, log }).run(turn('q'));
    expect(result.text.length).toBe(1024 * 1024);
  });

  it('does not pass relay secrets to the program', async () => {
    const before = process.env.GATEWAY_RELAY_SECRET;
    process.env.GATEWAY_RELAY_SECRET = 'relay-secret-value';
    try {
      const result = await new CommandAgent({
        command: 'echo "secret=[$GATEWAY_RELAY_SECRET] home=[$HOME]"',
        log,
      }).run(turn('q'));
      expect(result.text).toBe(`secret=[] home=[${process.env.HOME ?? ''}]`);
    } finally {
      if (before === undefined) delete process.env.GATEWAY_RELAY_SECRET;
      else process.env.GATEWAY_RELAY_SECRET = before;
    }
  });

  it('does not pass the dashboard session token or the secondary delivery key to the program', async () => {
    const names = ['HERMES_DASHBOARD_SESSION_TOKEN', 'GATEWAY_RELAY_DELIVERY_KEY_SECONDARY'] as const;
    const before = names.map((name) => process.env[name]);
    for (const name of names) process.env[name] = `${name}-value`;
    try {
      const result = await new CommandAgent({
        command: 'echo "[$HERMES_DASHBOARD_SESSION_TOKEN][$GATEWAY_RELAY_DELIVERY_KEY_SECONDARY]"',
        log,
      }).run(turn('q'));
      expect(result.text).toBe('[][]');
    } finally {
      names.forEach((name, i) => {
        const value = before[i];
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      });
    }
  });

  /** A long-running program that starts a grandchild and writes both pids. */
  function longRunner(name: string, ignoreTerm: boolean): { command: string; pids: string } {
    const pids = join(dir.path, `${name}.pids`);
    const command = script(
      `${name}.mjs`,
      `import { spawn } from 'node:child_process';
      import { writeFileSync } from 'node:fs';
      ${ignoreTerm ? "process.on('SIGTERM', () => {});" : ''}
      const grandchild = spawn(process.execPath, ['-e', ${JSON.stringify(
        `${ignoreTerm ? "process.on('SIGTERM', () => {});" : ''} setInterval(() => {}, 1000);`,
      )}], { stdio: 'ignore' });
      writeFileSync(${JSON.stringify(pids)}, JSON.stringify([process.pid, grandchild.pid]));
      setInterval(() => {}, 1000);`,
    );
    return { command, pids };
  }

  async function startedPids(path: string): Promise<number[]> {
    return until(() => {
      if (!existsSync(path)) return undefined;
      const pids = JSON.parse(readFileSync(path, 'utf8')) as number[];
      return pids.length === 2 ? pids : undefined;
    });
  }

  it('abort kills the whole process tree and rejects with AbortError', async () => {
    const { command, pids: pidFile } = longRunner('long', false);
    const controller = new AbortController();
    const running = new CommandAgent({ command, log }).run(turn('q', { signal: controller.signal }));
    const pids = await startedPids(pidFile);
    for (const pid of pids) expect(isAlive(pid)).toBe(true);
    controller.abort();
    const error = await rejection(running);
    expect(error.name).toBe('AbortError');
    await until(() => pids.every((pid) => !isAlive(pid)) || undefined, 5000, 'the processes to die');
  });

  it('abort escalates to SIGKILL for programs that ignore SIGTERM', async () => {
    const { command, pids: pidFile } = longRunner('stubborn', true);
    const controller = new AbortController();
    const running = new CommandAgent({ command, log }).run(turn('q', { signal: controller.signal }));
    const pids = await startedPids(pidFile);
    controller.abort();
    expect((await rejection(running)).name).toBe('AbortError');
    await until(() => pids.every((pid) => !isAlive(pid)) || undefined, 8000, 'the processes to die');
  });

  it('times out: kills the program and rejects with a clear message', async () => {
    const { command, pids: pidFile } = longRunner('slow', false);
    const running = new CommandAgent({ command, log, timeoutMs: 2500 }).run(turn('q'));
    const error = await rejection(running);
    expect(error.name).not.toBe('AbortError');
    expect(error.message).toMatch(/timed out after 2\.5 s/);
    const pids = await startedPids(pidFile);
    await until(() => pids.every((pid) => !isAlive(pid)) || undefined, 5000, 'the processes to die');
  });

  it('does not wait for background processes holding stdout, and kills them', async () => {
    const pidFile = join(dir.path, 'bg.pid');
    const command = `sleep 60 & echo $! > ${JSON.stringify(pidFile)}; echo done`;
    const result = await new CommandAgent({ command, log }).run(turn('q'));
    expect(result.text).toBe('done');
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    expect(pid).toBeGreaterThan(0);
    await until(() => !isAlive(pid) || undefined, 5000, 'the background process to die');
  });

  it('close() stops turns in flight', async () => {
    const { command, pids: pidFile } = longRunner('closing', false);
    const agent = new CommandAgent({ command, log });
    const running = agent.run(turn('q'));
    const pids = await startedPids(pidFile);
    await agent.close();
    expect((await rejection(running)).name).toBe('AbortError');
    await until(() => pids.every((pid) => !isAlive(pid)) || undefined, 5000, 'the processes to die');
  });

  it('rejects when the program cannot start', async () => {
    const error = await rejection(
      new CommandAgent({ command: 'echo hi', log, cwd: join(dir.path, 'missing-dir') }).run(turn('q')),
    );
    expect(error.message).toMatch(/could not start the agent command/);
  });
});

// ---------------------------------------------------------------------------------------------
describe('createAgent', () => {
  it('builds each kind', () => {
    expect(createAgent({ kind: 'echo' }, log)).toBeInstanceOf(EchoAgent);
    expect(
      createAgent({ kind: 'openai', openai: { baseUrl: 'http://localhost:11434/v1', model: 'llama3' } }, log),
    ).toBeInstanceOf(OpenAIAgent);
    expect(createAgent({ kind: 'command', command: 'cat' }, log)).toBeInstanceOf(CommandAgent);
  });

  it('names the missing setting', () => {
    expect(() => createAgent({ kind: 'openai', openai: { model: 'm' } }, log)).toThrow(/OPENAI_BASE_URL/);
    expect(() => createAgent({ kind: 'openai' }, log)).toThrow(/OPENAI_BASE_URL/);
    expect(() =>
      createAgent({ kind: 'openai', openai: { baseUrl: 'http://h/v1', model: ' ' } }, log),
    ).toThrow(/HERMES_MODEL/);
    expect(() => createAgent({ kind: 'openai', openai: { baseUrl: 'not a url', model: 'm' } }, log)).toThrow(
      /OPENAI_BASE_URL/,
    );
    expect(() => createAgent({ kind: 'command' }, log)).toThrow(/HERMES_AGENT_COMMAND/);
    expect(() => createAgent({ kind: 'command', command: '  ' }, log)).toThrow(/HERMES_AGENT_COMMAND/);
    expect(() => createAgent({ kind: 'claude' as 'echo' }, log)).toThrow(/unknown HERMES_AGENT/);
  });
});

describe('OpenAIAgent with files (issue: vision parts and text documents)', () => {
  const dir = tempDir('openai-files');
  afterAll(() => dir.remove());

  it('sends a fetched image as a data-URL image part, a text file as text, and names any other file', () => {
    const image = join(dir.path, 'photo');
    const notes = join(dir.path, 'notes');
    writeFileSync(image, Buffer.from([0x89, 0x50, 0x4e, 0x47]));
    writeFileSync(notes, 'line one\nline two');
    const agent = new OpenAIAgent({
      baseUrl: 'http://127.0.0.1:9/v1',
      model: 'm',
      log: pino({ level: 'silent' }),
    });
    const event = MessageEventSchema.parse({
      text: 'what is this?',
      source: { platform: 'telegram', chat_id: '1' },
    });
    const withFiles = {
      ...event,
      media: [
        { url: 'u1', kind: 'image', mime: 'image/png', local_path: image },
        { url: 'u2', kind: 'document', mime: 'text/plain', filename: 'notes.txt', local_path: notes },
        { url: 'u3', kind: 'voice', mime: 'audio/ogg' },
      ],
    } as typeof event;
    const body = agent.requestBody({
      history: [],
      message: { role: 'user', content: 'what is this?' },
      platformHint: '',
      event: withFiles,
    });
    expect(body.messages.at(-1)).toEqual({
      role: 'user',
      content: [
        {
          type: 'text',
          text: 'what is this?\n\n[file notes.txt]\nline one\nline two\n\n[the user sent voice]',
        },
        {
          type: 'image_url',
          image_url: {
            url: `data:image/png;base64,${Buffer.from([0x89, 0x50, 0x4e, 0x47]).toString('base64')}`,
          },
        },
      ],
    });
    // Without files: the plain string message, as before.
    expect(
      agent
        .requestBody({ history: [], message: { role: 'user', content: 'hi' }, platformHint: '', event })
        .messages.at(-1),
    ).toEqual({ role: 'user', content: 'hi' });
  });
});
