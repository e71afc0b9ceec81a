import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FrameDecoder,
  jsonDepthExceeds,
  MAX_JSON_DEPTH,
  parseJsonBytes,
  parseJsonText,
} from '../../src/protocol/index.js';

/** Nesting depth of a parsed value, walked without recursion. */
function depthOf(value: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop() as [unknown, number];
    if (current === null || typeof current !== 'object') continue;
    max = Math.max(max, depth + 1);
    for (const child of Object.values(current)) stack.push([child, depth + 1]);
  }
  return max;
}

const nested = (depth: number, open = '[', close = ']') => `${open.repeat(depth)}${close.repeat(depth)}`;

describe('bounded JSON parsing', () => {
  it('accepts exactly the values nested at most the bound (property, small bound)', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 8 }), fc.integer({ min: 0, max: 8 }), (value, bound) => {
        const text = JSON.stringify(value);
        const parsed = parseJsonText(text, bound);
        expect(parsed.ok).toBe(depthOf(value) <= bound);
        if (parsed.ok) expect(parsed.value).toEqual(JSON.parse(text));
      }),
      { numRuns: 2_000 },
    );
  });

  it('ignores brackets inside strings, escaped quotes included', () => {
    expect(jsonDepthExceeds(JSON.stringify({ a: '['.repeat(500), b: '\\"[[[[' }), 2)).toBe(false);
    expect(jsonDepthExceeds(`["\\"", ${nested(3)}]`, 3)).toBe(true);
    expect(jsonDepthExceeds(`["\\\\", ${nested(2)}]`, 3)).toBe(false);
  });

  it(`refuses ${MAX_JSON_DEPTH + 1} levels by default and takes ${MAX_JSON_DEPTH}`, () => {
    expect(parseJsonText(nested(MAX_JSON_DEPTH)).ok).toBe(true);
    expect(parseJsonText(nested(MAX_JSON_DEPTH + 1))).toEqual({ ok: false, error: 'too_deep' });
    expect(parseJsonText(nested(MAX_JSON_DEPTH + 1, '{"a":', '}'))).toEqual({ ok: false, error: 'too_deep' });
  });

  it('refuses 100,000 nested arrays without throwing, as text, bytes and a frame', () => {
    const deep = nested(100_000);
    expect(parseJsonText(deep)).toEqual({ ok: false, error: 'too_deep' });
    expect(parseJsonBytes(Buffer.from(deep))).toEqual({ ok: false, error: 'too_deep' });
    const out = new FrameDecoder().push(`${deep}\n{"type":"hello"}\n`);
    expect(out.values).toEqual([{ type: 'hello' }]);
    expect(out.errors).toEqual([
      { line: deep.slice(0, 200), error: expect.stringMatching(/nested deeper than 64/) },
    ]);
  });

  it('still tells not-JSON and not-UTF-8 apart', () => {
    expect(parseJsonText('{not json')).toEqual({ ok: false, error: 'not_json' });
    expect(parseJsonBytes(Buffer.from([0x7b, 0xff, 0x7d]))).toEqual({ ok: false, error: 'not_utf8' });
  });
});
