import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  COMPILABLE_MESSAGE_EVENT,
  describeZodError,
  InboundFrameDefinition,
  InboundFrameSchema,
  MessageEventDefinition,
  MessageEventSchema,
  messageEventToWire,
  parseConnectorFrame,
  SessionSourceDefinition,
  SessionSourceSchema,
} from '../../src/protocol/index.js';
import { mulberry32 } from '../support/prng.js';
import { VECTORS_DIR } from '../support/vectors.js';

/**
 * The compiled fast paths (src/protocol/compiled.ts) against the interpreted zod definitions they
 * stand in front of (issue 20): on every event and source of the cross-language vectors, of the
 * docs' JSON examples, of hand-picked edge cases and of a few thousand seeded mutations of them,
 * both must agree on success, on the output (values, `undefined`-valued keys and key order, at every
 * depth) and, on rejection, on zod's issues and the one-line message.
 */

type Json = unknown;

/** A value's full shape: key order and `undefined`-valued keys count; arrays keep their holes. */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return ['array', value.map(shape)];
  if (value !== null && typeof value === 'object') {
    return [
      'object',
      Object.getPrototypeOf(value) === Object.prototype,
      Object.keys(value).map((k) => [k, shape((value as Record<string, unknown>)[k])]),
    ];
  }
  if (typeof value === 'number' && Number.isNaN(value)) return ['NaN'];
  return [typeof value, value];
}

function agree(fast: z.ZodType, reference: z.ZodType, input: unknown): boolean {
  const a = fast.safeParse(input);
  const b = reference.safeParse(input);
  expect(a.success, JSON.stringify(input)?.slice(0, 300)).toBe(b.success);
  if (a.success && b.success) {
    expect(shape(a.data), JSON.stringify(input)?.slice(0, 300)).toEqual(shape(b.data));
    // A fresh output, never the input handed back (the inbox stores and the runtime reads it).
    if (input !== null && typeof input === 'object') expect(a.data).not.toBe(input);
  } else if (!a.success && !b.success) {
    expect(a.error.issues).toEqual(b.error.issues);
    expect(describeZodError(a.error)).toBe(describeZodError(b.error));
  }
  // parse() takes the same road as safeParse(): same value, or the same throw.
  if (b.success) expect(shape(fast.parse(input))).toEqual(shape(b.data));
  else expect(() => fast.parse(input)).toThrow();
  return b.success;
}

/** Every value under a key named `key`, at any depth. */
function collect(value: Json, key: string, into: unknown[]): unknown[] {
  if (Array.isArray(value)) for (const item of value) collect(item, key, into);
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === key) into.push(v);
      collect(v, key, into);
    }
  }
  return into;
}

/** JSON bodies of the vectors and of the docs' ```json blocks. */
function corpus(): Json[] {
  const out: Json[] = [];
  for (const file of readdirSync(VECTORS_DIR).filter((f) => f.endsWith('.json')))
    out.push(JSON.parse(readFileSync(join(VECTORS_DIR, file), 'utf8')));
  const docs = resolve(VECTORS_DIR, '../../docs');
  for (const file of readdirSync(docs).filter((f) => f.endsWith('.md'))) {
    const text = readFileSync(join(docs, file), 'utf8');
    for (const block of text.matchAll(/```json\n([\s\S]*?)```/g)) {
      try {
        out.push(JSON.parse(block[1] as string));
      } catch {
        // an illustrative block with comments or ellipses: not a vector
      }
    }
  }
  return out;
}

const FULL_SOURCE = {
  platform: 'discord',
  chat_id: 'c1',
  chat_type: 'group',
  chat_name: 'general',
  user_id: 7,
  user_name: 'Ana',
  thread_id: null,
  chat_topic: 'topic',
  user_id_alt: 'alt',
  chat_id_alt: 9,
  guild_id: 'g1',
  scope_id: 'T77',
  parent_chat_id: 'p',
  message_id: 55,
  is_bot: false,
  message_is_edit: true,
  one_to_one_verified: true,
  profile: 'reviewer',
  user_display_name: 'Ana B',
  user_handle: '@ana',
  auto_thread_created: true,
  auto_thread_initial_name: 'Thread',
  prospective_thread_id: 'M5',
};

/** Hand-picked events: the fields of every test in test/protocol, and their edge cases. */
const SEED_EVENTS: Json[] = [
  {},
  { text: 'hi' },
  { text: 5, media_urls: 'x', source: 'nope' },
  { message_type: 'photo' },
  { text: 'x', message_type: null },
  { text: 'x', message_type: {} },
  { text: 'x', message_type: 'TEXT' },
  {
    text: 'hello',
    message_id: 1234,
    reply_to_message_id: '1200',
    media_urls: ['https://x/1.png'],
    source: { platform: 'telegram', chat_id: -100, chat_type: 'group', user_id: 7, guild_id: null },
  },
  {
    text: 'hi',
    message_type: 'voice',
    message_id: 'm1',
    media_urls: ['https://c/relay/media/a'],
    media: [{ url: 'https://c/relay/media/a', mime: 'audio/ogg', kind: 'voice', size: 12, filename: null }],
    reply_to: { author: 'Alice', text: null, is_own: true },
    context: [{ text: 'earlier', source: { user_name: 'alice' } }, { text: 3 }, { source: null }],
    context_error: false,
    prompt_response: { prompt_id: 'a1b2c3d4', option_id: 'deny', prompt_message_id: 'pm55', extra: [1] },
    some_future_field: 1,
    source: FULL_SOURCE,
  },
  { prompt_response: { prompt_id: 'p' } },
  { prompt_response: { prompt_id: 'p', option_id: 'o', label: 4, prompt_message_id: 8 } },
  { media: [{ kind: 'x' }] },
  { media: [{ url: 'u', size: '12' }] },
  { reply_to: 'x', context: 'y', context_error: 'z' },
  { source: { platform: null, chat_id: null, chat_type: '' } },
  { source: { platform: 5, chat_id: true, chat_type: null, is_bot: 'yes' } },
  { source: [] },
  { source: null },
  { text: '', message_id: '', reply_to_message_id: 0, source: { user_id: '', thread_id: 0 } },
  messageEventToWire({
    text: 'wire',
    message_type: 'command',
    message_id: 'm9',
    media_urls: ['u'],
    media: [{ url: 'u', kind: 'photo', mime: undefined, size: undefined, filename: undefined, caption: 'c' }],
    reply_to: { text: 't', author: 'a', is_own: false },
    context: [{ text: 'c', source: { user_name: 'u', user_id: '1' } }],
    prompt_response: { prompt_id: 'p', option_id: 'o', label: 'L', prompt_message_id: 'pm' },
    source: { platform: 'slack', chat_id: 'C1', chat_type: 'group', user_id: 'U1', scope_id: 'T1' },
  }),
];

const ROOT_VALUES: unknown[] = [null, undefined, 'hi', 3, 0, true, [], [{}], NaN, ''];

const EVENT_KEYS = [
  'text',
  'message_type',
  'message_id',
  'reply_to_message_id',
  'media_urls',
  'media',
  'reply_to',
  'context',
  'context_error',
  'prompt_response',
  'source',
];

function mutator(random: () => number) {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const strange = (): unknown =>
    pick<() => unknown>([
      () => null,
      () => undefined,
      () => true,
      () => false,
      () => 0,
      () => -1.5,
      () => 2 ** 53 + 2,
      () => '',
      () => 'x'.repeat(1 + Math.floor(random() * 70_000)),
      () => 'héllo \u{1f600} \u202e \u0000 \ud800',
      () => pick(['text', 'photo', 'command', 'sticker', 'gif']),
      () => [],
      () => ['a', 1, null],
      () => [{}],
      () => ({}),
      () => ({ url: 'u' }),
      () => ({ user_name: 'n', user_id: 3 }),
      () => ({ prompt_id: 'p', option_id: 'o' }),
      () => ({ platform: 'telegram', chat_id: 1 }),
      () => Object.fromEntries([['__proto__', { polluted: true }]]),
    ])();
  const mutate = (value: unknown, depth: number): unknown => {
    if (Array.isArray(value)) {
      const copy = value.map((item) => (random() < 0.5 ? mutate(item, depth + 1) : item));
      if (random() < 0.2) copy.push(strange());
      if (random() < 0.2) copy.splice(Math.floor(random() * (copy.length + 1)), 1);
      return copy;
    }
    if (value === null || typeof value !== 'object') return random() < 0.5 ? strange() : value;
    const entries = Object.entries(value as Record<string, unknown>);
    const out: Record<string, unknown> = {};
    for (const [key, item] of entries) {
      const roll = random();
      if (roll < 0.12) continue; // dropped
      if (roll < 0.3)
        out[key] = strange(); // wrong type
      else if (roll < 0.45 && depth < 4) out[key] = mutate(item, depth + 1);
      else out[key] = item;
    }
    // Missing keys of the schema filled with something, extra keys added, order shuffled.
    if (depth === 0 && random() < 0.5) out[pick(EVENT_KEYS)] = strange();
    if (random() < 0.3) out[`extra_${Math.floor(random() * 5)}`] = strange();
    if (random() < 0.3) {
      const keys = Object.keys(out);
      const shuffled: Record<string, unknown> = {};
      for (const key of keys.sort(() => random() - 0.5)) shuffled[key] = out[key];
      return shuffled;
    }
    return out;
  };
  return mutate;
}

describe('the compiled fast paths equal zod', () => {
  const docs = corpus();
  const sources = docs.flatMap((doc) => collect(doc, 'source', []));
  const events = [...SEED_EVENTS, ...docs.flatMap((doc) => collect(doc, 'event', []))];

  it('are installed (the schemas are not the interpreted definitions themselves)', () => {
    expect(MessageEventSchema).not.toBe(MessageEventDefinition);
    expect(SessionSourceSchema).not.toBe(SessionSourceDefinition);
    expect(InboundFrameSchema).not.toBe(InboundFrameDefinition);
    // …and zod compiles every twin (a refusal would silently leave the interpreted parse in place).
    expect(() => z.compile(SessionSourceDefinition, { strict: true })).not.toThrow();
    expect(() => z.compile(COMPILABLE_MESSAGE_EVENT, { strict: true })).not.toThrow();
    expect(() =>
      z.compile(InboundFrameDefinition.extend({ event: COMPILABLE_MESSAGE_EVENT }), { strict: true }),
    ).not.toThrow();
    // The definitions themselves are what z.compile refuses (source's callback catch): the reason for twins.
    expect(() => z.compile(MessageEventDefinition, { strict: true })).toThrow(/catch with a callback/);
    expect(sources.length).toBeGreaterThan(10);
  });

  it('SessionSource: every source of the vectors and docs, and their mutations', () => {
    const mutate = mutator(mulberry32(1));
    for (const source of [...sources, FULL_SOURCE, ...ROOT_VALUES]) {
      agree(SessionSourceSchema, SessionSourceDefinition, source);
      for (let i = 0; i < 20; i++) agree(SessionSourceSchema, SessionSourceDefinition, mutate(source, 1));
    }
  });

  it('MessageEvent: every seed, vector and docs event, the non-objects, and 4,000 mutations', () => {
    const mutate = mutator(mulberry32(2));
    for (const value of [...events, ...ROOT_VALUES]) agree(MessageEventSchema, MessageEventDefinition, value);
    const withSources = sources.map((source) => ({ text: 't', source }));
    const seeds = [...events, ...withSources];
    let accepted = 0;
    for (let i = 0; i < 4_000; i++) {
      const seed = seeds[i % seeds.length];
      if (agree(MessageEventSchema, MessageEventDefinition, mutate(seed, 0))) accepted++;
    }
    expect(accepted).toBeGreaterThan(3_000);
  });

  it('the inbound frame: valid, rejected (bufferId, type, event) and 3,000 mutations; parseConnectorFrame agrees', () => {
    const frames: unknown[] = [
      ...events.map((event, i) => ({ type: 'inbound', event, bufferId: i % 2 ? `dlv_${i}` : i })),
      { type: 'inbound', event: {} },
      { type: 'inbound' },
      { type: 'inbound', event: 'hi' },
      { type: 'inbound', event: {}, bufferId: '' },
      { type: 'inbound', event: {}, bufferId: 'x'.repeat(257) },
      { type: 'inbound', event: {}, bufferId: null },
      { type: 'inbound', event: {}, bufferId: 1.5 },
      { type: 'inbound', event: [], bufferId: true },
      { type: 'inbound_ack', event: {} },
      { event: {} },
    ];
    const mutate = mutator(mulberry32(3));
    const all = [...frames, ...ROOT_VALUES];
    for (let i = 0; i < 3_000; i++) all.push(mutate(frames[i % frames.length], 0));
    let rejected = 0;
    for (const frame of all) {
      if (!agree(InboundFrameSchema, InboundFrameDefinition, frame)) rejected++;
      if (frame !== null && typeof frame === 'object' && (frame as { type?: unknown }).type === 'inbound') {
        const reference = InboundFrameDefinition.safeParse(frame);
        const parsed = parseConnectorFrame(frame);
        if (reference.success) {
          expect(parsed.kind).toBe('frame');
          if (parsed.kind === 'frame') expect(shape(parsed.frame)).toEqual(shape(reference.data));
        } else {
          expect(parsed).toEqual({
            kind: 'invalid',
            type: 'inbound',
            error: describeZodError(reference.error),
          });
        }
      }
    }
    expect(rejected).toBeGreaterThan(100);
  });
});

describe('without new Function', () => {
  it('parses through the interpreted definition, with the same result (node --disallow-code-generation-from-strings)', () => {
    const entry = resolve(VECTORS_DIR, '../../dist/src/protocol/index.js');
    const script = `
      const p = await import(${JSON.stringify(pathToFileURL(entry).href)});
      const input = { text: 'hi', message_id: 5, source: { platform: 'telegram', chat_id: -1, user_name: null } };
      const a = p.MessageEventSchema.safeParse(input);
      const b = p.MessageEventDefinition.safeParse(input);
      const frame = p.parseConnectorFrame({ type: 'inbound', event: input, bufferId: '' });
      let evalRefused = false;
      try { new Function('return 1'); } catch { evalRefused = true; }
      console.log(JSON.stringify({ evalRefused, same: JSON.stringify(a) === JSON.stringify(b), keys: Object.keys(a.data.source), frame }));
    `;
    const run = spawnSync(
      process.execPath,
      ['--disallow-code-generation-from-strings', '--input-type=module', '-e', script],
      {
        encoding: 'utf8',
      },
    );
    expect(run.stderr).toBe('');
    const out = JSON.parse(run.stdout) as {
      evalRefused: boolean;
      same: boolean;
      keys: string[];
      frame: unknown;
    };
    expect(out.evalRefused).toBe(true);
    expect(out.same).toBe(true);
    expect(out.keys.slice(0, 3)).toEqual(['platform', 'chat_id', 'chat_type']);
    expect(out.frame).toEqual({
      kind: 'invalid',
      type: 'inbound',
      error: expect.stringContaining('bufferId'),
    });
  });
});
