import { readFileSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { redact } from '../../common/redact.js';
import type { MediaItem, MessageEvent } from '../../protocol/index.js';
import {
  type Agent,
  type AgentTurnInput,
  type AgentTurnResult,
  abortError,
  type ConversationMessage,
} from './types.js';

const DEFAULT_SYSTEM_PROMPT =
  'You are Hermes, a helpful assistant talking with people through a chat app. ' +
  'Answer concisely and in the language the user writes in.';

const DEFAULT_OPENAI_TIMEOUT_MS = 120_000;
/** Bodies read for an error description or a non-streaming answer are capped. */
const MAX_ERROR_BODY = 64 * 1024;
const MAX_JSON_BODY = 8 * 1024 * 1024;
const MAX_DETAIL = 300;

export interface OpenAIAgentOptions {
  /** An OpenAI-compatible API root such as `https://api.openai.com/v1` (a trailing `/` is fine). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …` when set (local servers often need none). */
  apiKey?: string;
  model: string;
  log: Logger;
  /**
   * Give up when the server sends nothing for this long (default 120 s): before the response
   * headers, or between two chunks of a streamed answer. A reply that keeps streaming never times out.
   */
  timeoutMs?: number;
  /** Send at most this many history messages (the newest); default: all the session manager gives. */
  maxHistory?: number;
}

/** An error whose message is already fit to show the user. */
class PresentableError extends Error {}

/**
 * Server-sent events, incrementally: feed decoded text in arbitrary pieces, get back the `data` of
 * each complete event (multi-line `data:` fields joined with `\n`, comments and other fields
 * ignored, CRLF / LF / CR line ends).
 */
export class SseParser {
  #buffer = '';
  #data: string[] = [];

  push(text: string): string[] {
    const events: string[] = [];
    const buffer = this.#buffer + text;
    let start = 0;
    for (let i = 0; i < buffer.length; i++) {
      const c = buffer[i];
      if (c !== '\n' && c !== '\r') continue;
      // A CR at the very end may be the first half of a CRLF: wait for the next piece.
      if (c === '\r' && i === buffer.length - 1) break;
      const line = buffer.slice(start, i);
      if (c === '\r' && buffer[i + 1] === '\n') i++;
      start = i + 1;
      this.#line(line, events);
    }
    this.#buffer = buffer.slice(start);
    return events;
  }

  /** The stream ended: a last event without its blank line still counts. */
  end(): string[] {
    const events: string[] = [];
    const rest = this.#buffer.replace(/\r$/, '');
    this.#buffer = '';
    if (rest) this.#line(rest, events);
    this.#line('', events);
    return events;
  }

  #line(line: string, events: string[]): void {
    if (line === '') {
      if (this.#data.length > 0) events.push(this.#data.join('\n'));
      this.#data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.#data.push(value);
  }
}

function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${Number((ms / 1000).toFixed(1))} s`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clip(text: string, max = MAX_DETAIL): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** The upstream's own words from an error body: `{error:{message}}`, `{error:"…"}`, `{message}`, `{detail}`. */
function upstreamErrorMessage(body: unknown): string | undefined {
  if (!isRecord(body)) return undefined;
  const { error } = body;
  if (typeof error === 'string' && error.trim()) return error;
  if (isRecord(error) && typeof error.message === 'string' && error.message.trim()) return error.message;
  if (typeof body.message === 'string' && body.message.trim()) return body.message;
  if (typeof body.detail === 'string' && body.detail.trim()) return body.detail;
  return undefined;
}

type ContentPart = { type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } };

/** Largest image sent inline to a vision model, and largest text file put in the prompt. */
const MAX_INLINE_IMAGE_BYTES = 5 * 1024 * 1024;
const MAX_INLINE_TEXT_BYTES = 100 * 1024;

/**
 * The new message with the files the gateway fetched for it (`local_path`): images as image parts
 * (data URLs, since the connector's copies need the relay's credentials), text documents appended
 * as text; anything else is named, so the model knows it was sent.
 */
function userMessage(
  message: ConversationMessage,
  event: MessageEvent | undefined,
): ConversationMessage | { role: 'user'; content: ContentPart[] } {
  const files: (MediaItem & { local_path?: string })[] = event?.media ?? [];
  if (files.length === 0) return { role: message.role, content: message.content };
  let text = message.content;
  const images: ContentPart[] = [];
  for (const file of files) {
    const name = file.filename ?? file.kind ?? 'file';
    const mime = file.mime ?? '';
    try {
      if (
        file.local_path &&
        mime.startsWith('image/') &&
        statSync(file.local_path).size <= MAX_INLINE_IMAGE_BYTES
      ) {
        const data = readFileSync(file.local_path).toString('base64');
        images.push({ type: 'image_url', image_url: { url: `data:${mime};base64,${data}` } });
        continue;
      }
      if (
        file.local_path &&
        (mime.startsWith('text/') || mime === 'application/json') &&
        statSync(file.local_path).size <= MAX_INLINE_TEXT_BYTES
      ) {
        text += `\n\n[file ${name}]\n${readFileSync(file.local_path, 'utf8')}`;
        continue;
      }
    } catch {
      // unreadable: named below like any other file
    }
    text += `\n\n[the user sent ${file.kind ?? 'a file'}${file.filename ? ` ${file.filename}` : ''}]`;
  }
  if (images.length === 0) return { role: message.role, content: text };
  return { role: 'user', content: [{ type: 'text', text }, ...images] };
}

/** Text of a message `content`: a string, or an array of `{type:'text', text}` parts. */
function contentText(content: unknown): string | undefined {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    const parts = content
      .map((part) => (isRecord(part) && typeof part.text === 'string' ? part.text : ''))
      .join('');
    return parts;
  }
  return undefined;
}

async function readCapped(response: Response, cap: number): Promise<{ text: string; truncated: boolean }> {
  if (!response.body) return { text: '', truncated: false };
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    if (bytes > cap) {
      await reader.cancel().catch(() => {});
      return { text: text + decoder.decode(), truncated: true };
    }
    text += decoder.decode(value, { stream: true });
  }
  return { text: text + decoder.decode(), truncated: false };
}

function networkDetail(error: unknown): string {
  const cause = error instanceof Error ? error.cause : undefined;
  const source = cause instanceof Error ? cause : error instanceof Error ? error : undefined;
  if (!source) return String(error);
  const code = (source as { code?: unknown }).code;
  const codeText = typeof code === 'string' ? code : '';
  if (!source.message) return codeText || 'unknown error';
  return codeText && !source.message.includes(codeText) ? `${codeText}: ${source.message}` : source.message;
}

/** One turn = one `POST {baseUrl}/chat/completions` with `stream: true`, streamed into `onProgress`. */
export class OpenAIAgent implements Agent {
  readonly name = 'openai';
  readonly #url: string;
  readonly #host: string;
  readonly #apiKey: string | undefined;
  readonly #model: string;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #maxHistory: number | undefined;

  constructor(options: OpenAIAgentOptions) {
    const base = options.baseUrl.trim().replace(/\/+$/, '');
    const url = base.endsWith('/chat/completions') ? base : `${base}/chat/completions`;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new Error(`OPENAI_BASE_URL is not a valid URL: ${clip(options.baseUrl, 200)}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new Error('OPENAI_BASE_URL must be an http:// or https:// URL');
    }
    this.#url = parsed.href;
    this.#host = parsed.host;
    this.#apiKey = options.apiKey || undefined;
    this.#model = options.model;
    this.#log = options.log;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_OPENAI_TIMEOUT_MS;
    this.#maxHistory = options.maxHistory;
  }

  /** The request body of a turn (exported for inspection; the agent sends exactly this). */
  requestBody(
    input: Pick<AgentTurnInput, 'history' | 'message' | 'platformHint'> & { event?: MessageEvent },
  ): {
    model: string;
    messages: (ConversationMessage | { role: 'user'; content: ContentPart[] })[];
    stream: true;
  } {
    const hint = input.platformHint.trim();
    const system = hint ? `${DEFAULT_SYSTEM_PROMPT}\n\n${hint}` : DEFAULT_SYSTEM_PROMPT;
    const history =
      this.#maxHistory === undefined
        ? input.history
        : this.#maxHistory <= 0
          ? []
          : input.history.slice(-this.#maxHistory);
    return {
      model: this.#model,
      messages: [
        { role: 'system', content: system },
        ...history.map(({ role, content }) => ({ role, content })),
        userMessage(input.message, input.event),
      ],
      stream: true,
    };
  }

  async run(input: AgentTurnInput): Promise<AgentTurnResult> {
    if (input.signal.aborted) throw abortError();
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    input.signal.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, this.#timeoutMs);
    };
    let phase: 'connect' | 'read' = 'connect';
    const started = Date.now();
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'text/event-stream, application/json',
    };
    if (this.#apiKey) headers.authorization = `Bearer ${this.#apiKey}`;
    const body = this.requestBody(input);
    this.#log.debug(
      { host: this.#host, model: this.#model, messages: body.messages.length },
      'model request',
    );

    arm();
    try {
      const response = await fetch(this.#url, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      phase = 'read';
      arm();
      if (!response.ok) throw new PresentableError(await this.#httpError(response));
      const type = response.headers.get('content-type') ?? '';
      const text =
        /json/i.test(type) && !/event-stream/i.test(type)
          ? await this.#readJson(response)
          : await this.#readStream(response, input, arm);
      this.#log.debug(
        { host: this.#host, model: this.#model, chars: text.length, ms: Date.now() - started },
        'model reply',
      );
      return { text };
    } catch (error) {
      if (input.signal.aborted) throw abortError();
      let message: string;
      if (timedOut) {
        const seconds = formatDuration(this.#timeoutMs);
        message =
          phase === 'connect'
            ? `the model server at ${this.#host} did not answer within ${seconds}`
            : `the model server at ${this.#host} stopped sending its reply (nothing for ${seconds})`;
      } else if (error instanceof PresentableError) {
        message = error.message;
      } else if (phase === 'connect') {
        message = `could not reach the model server at ${this.#host}: ${networkDetail(error)}`;
      } else {
        message = `the connection to the model server at ${this.#host} broke: ${networkDetail(error)}`;
      }
      message = this.#redact(message);
      this.#log.warn({ host: this.#host, model: this.#model, err: message }, 'model request failed');
      throw new Error(message);
    } finally {
      clearTimeout(timer);
      input.signal.removeEventListener('abort', onAbort);
      // Releases the connection when the body was not read to its end ([DONE] seen, error, …).
      controller.abort();
    }
  }

  #redact(text: string): string {
    return redact(text, [this.#apiKey]);
  }

  async #httpError(response: Response): Promise<string> {
    const status = `HTTP ${response.status}${response.statusText ? ` (${response.statusText})` : ''}`;
    let detail: string | undefined;
    try {
      const { text } = await readCapped(response, MAX_ERROR_BODY);
      try {
        detail = upstreamErrorMessage(JSON.parse(text));
      } catch {
        const type = response.headers.get('content-type') ?? '';
        if (!/html/i.test(type) && text.trim() && !/^\s*</.test(text)) detail = text;
      }
    } catch {
      // the body could not be read; the status alone has to do
    }
    return detail
      ? `the model server answered ${status}: ${clip(detail)}`
      : `the model server answered ${status}`;
  }

  /** A non-streaming answer: `{choices:[{message:{content}}]}`. */
  async #readJson(response: Response): Promise<string> {
    const { text, truncated } = await readCapped(response, MAX_JSON_BODY);
    if (truncated) throw new PresentableError('the model server sent an answer too large to handle');
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new PresentableError('the model server sent an answer that is not valid JSON');
    }
    return this.#completionText(body);
  }

  #completionText(body: unknown): string {
    const choice = isRecord(body) && Array.isArray(body.choices) ? body.choices[0] : undefined;
    const message = isRecord(choice) ? choice.message : undefined;
    const content = isRecord(message) ? contentText(message.content) : undefined;
    if (content === undefined) {
      const upstream = upstreamErrorMessage(body);
      throw new PresentableError(
        upstream
          ? `the model server reported an error: ${clip(upstream)}`
          : 'the model server sent an answer without a reply',
      );
    }
    if (!content.trim()) throw new PresentableError(this.#emptyReply(choice));
    return content;
  }

  #emptyReply(choice: unknown): string {
    const reason = isRecord(choice) && typeof choice.finish_reason === 'string' ? choice.finish_reason : '';
    return `the model returned an empty reply${reason ? ` (finish_reason: ${reason})` : ''}`;
  }

  async #readStream(response: Response, input: AgentTurnInput, arm: () => void): Promise<string> {
    if (!response.body) throw new PresentableError('the model server sent an empty response');
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser();
    let text = '';
    let finishReason = '';
    let events = 0;
    let done = false;
    // Kept while no event has been seen: a server may answer plain JSON without a content type.
    let raw = '';

    const handle = (data: string): void => {
      events++;
      if (data.trim() === '[DONE]') {
        done = true;
        return;
      }
      let chunk: unknown;
      try {
        chunk = JSON.parse(data);
      } catch {
        // Non-compliant servers put several `data:` lines in one event: try them one by one.
        const lines = data.split('\n');
        if (lines.length > 1) {
          events--;
          for (const line of lines) if (!done) handle(line);
          return;
        }
        this.#log.debug({ host: this.#host }, 'ignoring a stream event that is not JSON');
        return;
      }
      if (!isRecord(chunk)) return;
      const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : undefined;
      if (!isRecord(choice)) {
        const upstream = upstreamErrorMessage(chunk);
        if (upstream && 'error' in chunk) {
          throw new PresentableError(`the model server reported an error: ${clip(upstream)}`);
        }
        return;
      }
      if (typeof choice.finish_reason === 'string') finishReason = choice.finish_reason;
      const delta = isRecord(choice.delta) ? contentText(choice.delta.content) : undefined;
      // Some servers stream whole `message` objects instead of deltas.
      const piece = delta ?? (isRecord(choice.message) ? contentText(choice.message.content) : undefined);
      if (!piece) return;
      text += piece;
      if (input.onProgress) {
        try {
          input.onProgress(text);
        } catch (error) {
          this.#log.warn({ err: error }, 'onProgress callback failed');
        }
      }
    };

    const feed = (decoded: string): void => {
      if (events === 0 && raw.length < MAX_JSON_BODY) raw += decoded;
      for (const data of parser.push(decoded)) {
        handle(data);
        if (done) return;
      }
    };

    while (!done) {
      const { done: ended, value } = await reader.read();
      if (ended) break;
      arm();
      feed(decoder.decode(value, { stream: true }));
    }
    if (done) {
      await reader.cancel().catch(() => {});
    } else {
      feed(decoder.decode());
      for (const data of parser.end()) {
        if (done) break;
        handle(data);
      }
    }

    if (events === 0 && raw.trim().startsWith('{')) {
      let body: unknown;
      try {
        body = JSON.parse(raw);
      } catch {
        body = undefined;
      }
      if (body !== undefined) return this.#completionText(body);
    }
    if (!text.trim()) throw new PresentableError(this.#emptyReply({ finish_reason: finishReason }));
    return text;
  }
}
