import { StringDecoder } from 'node:string_decoder';
import type { WireFrame } from './frames.js';
import { JSON_PARSE_ERRORS, parseJsonText } from './json.js';
import { MAX_WS_MESSAGE_BYTES } from './limits.js';

/**
 * Newline-delimited JSON over WebSocket text messages (reference §4.1): every frame is JSON + "\n";
 * a message may hold several frames or part of one; blank lines are skipped; a bad line (not JSON,
 * too long, nested too deep) is reported and skipped, never thrown.
 */

/**
 * One frame as one line. Typed with the frames the protocol defines, so a frame with a misspelt or
 * missing field does not compile; each side writes through a function narrowed to its direction
 * (the gateway transport's `writeFrame`, the connector's `sendFrame`).
 */
export function encodeFrame(frame: WireFrame): string {
  return encodeLine(frame);
}

export function encodeFrames(frames: readonly WireFrame[]): string {
  return frames.map(encodeFrame).join('');
}

/**
 * The framing alone: any JSON value as one line, the counterpart of `FrameDecoder`, which yields
 * untyped values. For tests and tools that write arbitrary lines; frames go through `encodeFrame`.
 */
export function encodeLine(value: object): string {
  return `${JSON.stringify(value)}\n`;
}

/**
 * One frame already encoded as one line (JSON + "\n", no other line break), for
 * `FrameWriter.write`: a stored delivery's `inbound` frame spliced from its stored text
 * (`deliveryLine`, issue 20).
 */
export class EncodedLine {
  constructor(readonly line: string) {}
}

/** Largest message a `FrameWriter` builds from several frames (one bigger frame still goes alone). */
export const COALESCED_MESSAGE_BYTES = 64 * 1024;

/**
 * Coalesces the frames written during one event-loop turn into one WebSocket message: NDJSON lets a
 * message carry several frames (reference §4.1), and under load one write then carries many frames
 * instead of costing a send each. Frames keep their order; each `done` is called once, with the
 * error of the message that carried it.
 */
export class FrameWriter {
  private lines: string[] = [];
  private bytes = 0;
  private callbacks: ((error?: Error) => void)[] = [];
  private scheduled = false;

  constructor(
    private readonly sendMessage: (data: string, done: (error?: Error) => void) => void,
    private readonly maxMessageBytes = COALESCED_MESSAGE_BYTES,
  ) {}

  /** One frame, or one already encoded ({@link EncodedLine}); subclasses see both here. */
  write(frame: WireFrame | EncodedLine, done?: (error?: Error) => void): void {
    const line = frame instanceof EncodedLine ? frame.line : encodeFrame(frame);
    // UTF-16 length × 3 bounds the UTF-8 size without encoding twice.
    const size = line.length * 3;
    if (this.lines.length > 0 && this.bytes + size > this.maxMessageBytes) this.flush();
    this.lines.push(line);
    this.bytes += size;
    if (done) this.callbacks.push(done);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Send what is buffered now (also called before a close, so no written frame is left behind). */
  flush(): void {
    this.scheduled = false;
    if (this.lines.length === 0) return;
    const data = this.lines.length === 1 ? (this.lines[0] as string) : this.lines.join('');
    const callbacks = this.callbacks;
    this.lines = [];
    this.bytes = 0;
    this.callbacks = [];
    try {
      this.sendMessage(data, (error) => {
        for (const callback of callbacks) callback(error);
      });
    } catch (error) {
      for (const callback of callbacks) callback(error as Error);
    }
  }
}

export interface FrameDecodeError {
  /** The offending line, cut to 200 characters for logging. */
  line: string;
  error: string;
}

export interface DecodedChunk {
  values: unknown[];
  errors: FrameDecodeError[];
}

export interface FrameDecoderOptions {
  /** Longest line accepted; a longer one is dropped up to its newline and reported. */
  maxLineChars?: number;
}

export class FrameDecoder {
  private buffer = '';
  private discarding = false;
  private readonly bytes = new StringDecoder('utf8');
  private readonly maxLineChars: number;

  constructor(options: FrameDecoderOptions = {}) {
    this.maxLineChars = options.maxLineChars ?? MAX_WS_MESSAGE_BYTES;
  }

  /** Feed one WebSocket message. Binary data is UTF-8, even when a character straddles messages. */
  push(data: string | Buffer | ArrayBuffer | Buffer[]): DecodedChunk {
    const text = typeof data === 'string' ? data : this.bytes.write(toBuffer(data));
    const out: DecodedChunk = { values: [], errors: [] };
    let start = 0;
    for (let newline = text.indexOf('\n'); newline !== -1; newline = text.indexOf('\n', start)) {
      const piece = text.slice(start, newline);
      start = newline + 1;
      if (this.discarding) {
        this.discarding = false;
        this.buffer = '';
        continue;
      }
      const line = this.buffer + piece;
      this.buffer = '';
      if (line.length > this.maxLineChars) {
        out.errors.push({
          line: line.slice(0, 200),
          error: `frame longer than ${this.maxLineChars} characters`,
        });
        continue;
      }
      this.decodeLine(line, out);
    }
    if (start < text.length && !this.discarding) {
      this.buffer += text.slice(start);
      if (this.buffer.length > this.maxLineChars) {
        out.errors.push({
          line: this.buffer.slice(0, 200),
          error: `frame longer than ${this.maxLineChars} characters`,
        });
        this.buffer = '';
        this.discarding = true;
      }
    }
    return out;
  }

  /** Characters held back waiting for a newline. */
  get pending(): number {
    return this.buffer.length;
  }

  private decodeLine(line: string, out: DecodedChunk): void {
    if (line.trim() === '') return;
    const parsed = parseJsonText(line);
    if (parsed.ok) out.values.push(parsed.value);
    else out.errors.push({ line: line.slice(0, 200), error: JSON_PARSE_ERRORS[parsed.error] });
  }
}

function toBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
