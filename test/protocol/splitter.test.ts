import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  chunkSuffix,
  codePointLength,
  formatParts,
  indexForBudget,
  type LenUnit,
  MIN_DECORATED_LIMIT,
  messageLength,
  splitMessage,
  splitMessageParts,
  utf16Length,
} from '../../src/protocol/index.js';

const UNITS: LenUnit[] = ['chars', 'utf16'];

/** True when `text` holds a high surrogate not followed by a low one, or a low one not preceded by a high. */
function hasLoneSurrogate(text: string): boolean {
  return /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);
}

/** Text pieces that stress the splitter: words, whitespace, inline code, fences, emoji. */
const piece = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
  { weight: 3, arbitrary: fc.constantFrom(' ', '  ', '\n', '\n\n', '\t', ' \n ') },
  { weight: 2, arbitrary: fc.constantFrom('`', '``', '\\`', '`code`', '`a b c`') },
  {
    weight: 2,
    arbitrary: fc.constantFrom('```', '```python\n', '```ts\n', '\n```\n', '```js title="x"\n', '  ```\n'),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom('\u{1F600}', '\u{1F469}\u200D\u{1F4BB}', 'é', '\u{20000}', '\u{1F50C}'),
  },
  { weight: 2, arbitrary: fc.constantFrom('word', 'lorem ipsum dolor', 'x'.repeat(40)) },
);
const messages = fc.array(piece, { maxLength: 40 }).map((pieces) => pieces.join(''));
const limits = fc.integer({ min: MIN_DECORATED_LIMIT, max: 300 });
const units = fc.constantFrom(...UNITS);

describe('splitMessage properties', () => {
  it('every formatted chunk fits the limit in its unit and holds no lone surrogate', () => {
    fc.assert(
      fc.property(messages, limits, units, (text, limit, unit) => {
        const chunks = splitMessage(text, limit, unit);
        expect(chunks.length).toBeGreaterThan(0);
        for (const chunk of chunks) {
          expect(messageLength(chunk, unit)).toBeLessThanOrEqual(limit);
          expect(hasLoneSurrogate(chunk)).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('preserves the text exactly: bodies plus dropped gaps rebuild the original', () => {
    fc.assert(
      fc.property(messages, limits, units, (text, limit, unit) => {
        const parts = splitMessageParts(text, limit, unit);
        expect(parts.map((p) => p.body + p.gap).join('')).toBe(text);
        for (const part of parts) {
          expect(part.gap.trim()).toBe('');
          expect(hasLoneSurrogate(part.body)).toBe(false);
        }
        // Only the last part may be empty, and only when the whole text is.
        for (const part of parts.slice(0, -1)) expect(part.body.length).toBeGreaterThan(0);
      }),
      { numRuns: 300 },
    );
  });

  it('formats each part as reopen + body + fence close + " (i/N)" when N > 1', () => {
    fc.assert(
      fc.property(messages, limits, units, (text, limit, unit) => {
        const parts = splitMessageParts(text, limit, unit);
        const chunks = formatParts(parts, limit);
        expect(splitMessage(text, limit, unit)).toEqual(chunks);
        expect(chunks).toHaveLength(parts.length);
        const n = parts.length;
        parts.forEach((p, i) => {
          const core = p.reopen + p.body + (p.closed ? '\n```' : '');
          expect(chunks[i]).toBe(n > 1 ? `${core} (${i + 1}/${n})` : core);
        });
      }),
      { numRuns: 300 },
    );
  });

  it('reopens a fence exactly when the previous part was closed', () => {
    fc.assert(
      fc.property(messages, limits, units, (text, limit, unit) => {
        const parts = splitMessageParts(text, limit, unit);
        expect(parts[0]?.reopen).toBe('');
        for (let i = 1; i < parts.length; i++) {
          const previous = parts[i - 1];
          const current = parts[i];
          if (!previous?.closed) expect(current?.reopen).toBe('');
          else expect(current?.reopen).toMatch(/^(```\S*\n)?$/);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('returns text that fits whole, undecorated', () => {
    fc.assert(
      fc.property(messages, units, fc.nat(50), (text, unit, extra) => {
        const limit = messageLength(text, unit) + extra;
        expect(splitMessage(text, limit, unit)).toEqual([text]);
        expect(splitMessageParts(text, limit, unit)).toEqual([
          { body: text, gap: '', reopen: '', closed: false },
        ]);
      }),
      { numRuns: 200 },
    );
  });

  it('splits text over the limit into more than one chunk', () => {
    fc.assert(
      fc.property(messages, limits, units, (text, limit, unit) => {
        fc.pre(messageLength(text, unit) > limit);
        expect(splitMessage(text, limit, unit).length).toBeGreaterThan(1);
      }),
      { numRuns: 200 },
    );
  });

  it('hard-splits below MIN_DECORATED_LIMIT: no suffixes, concatenation is the text, chunks fit', () => {
    fc.assert(
      fc.property(
        messages,
        fc.integer({ min: 2, max: MIN_DECORATED_LIMIT - 1 }),
        units,
        (text, limit, unit) => {
          const chunks = splitMessage(text, limit, unit);
          expect(chunks.join('')).toBe(text);
          for (const chunk of chunks) {
            expect(messageLength(chunk, unit)).toBeLessThanOrEqual(limit);
            expect(hasLoneSurrogate(chunk)).toBe(false);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('splitMessage: reference behaviour', () => {
  // limit 40: reserve 10 for the suffix and 4 for a fence close leaves a 26-unit window.
  it('splits at the last newline when it is at least halfway into the window', () => {
    const text = `${'a'.repeat(20)}\n${'b'.repeat(30)}`;
    expect(splitMessage(text, 40, 'chars')).toEqual([`${'a'.repeat(20)} (1/2)`, `${'b'.repeat(30)} (2/2)`]);
    const parts = splitMessageParts(text, 40, 'chars');
    expect(parts[0]?.gap).toBe('\n');
  });

  it('prefers the last space when the last newline is before halfway', () => {
    const text = 'ab\ncccc dddd eeee ffff gggg hhhh iiii jjjj kkkk';
    expect(splitMessage(text, 40, 'chars')).toEqual([
      'ab\ncccc dddd eeee ffff (1/2)',
      'gggg hhhh iiii jjjj kkkk (2/2)',
    ]);
  });

  it('prefers a newline over a later space when the newline is past halfway', () => {
    const text = 'aaaa bbbb cccc dddd\neee fff ggg hhh iii jjj';
    expect(splitMessage(text, 40, 'chars')[0]).toBe('aaaa bbbb cccc dddd (1/2)');
  });

  it('cuts hard at the window edge when there is no whitespace, with (i/N) suffixes', () => {
    const text = 'x'.repeat(60);
    expect(splitMessage(text, 40, 'chars')).toEqual([
      `${'x'.repeat(26)} (1/3)`,
      `${'x'.repeat(26)} (2/3)`,
      `${'x'.repeat(8)} (3/3)`,
    ]);
  });

  it('strips leading whitespace from the next chunk', () => {
    const text = `${'a'.repeat(20)}\n   \n  ${'b'.repeat(20)}`;
    const chunks = splitMessage(text, 40, 'chars');
    expect(chunks).toHaveLength(2);
    expect(chunks[1]).toBe(`${'b'.repeat(20)} (2/2)`);
    expect(splitMessageParts(text, 40, 'chars')[0]?.gap).toBe('\n  ');
  });

  it('closes a code fence and reopens it with its language in the next chunk', () => {
    const code = Array.from({ length: 12 }, (_, i) => `print("line ${i}")`).join('\n');
    const text = `Here is code:\n\`\`\`python\n${code}\n\`\`\`\nDone.`;
    const chunks = splitMessage(text, 80, 'chars');
    expect(chunks.length).toBeGreaterThan(2);
    const suffix = / \(\d+\/\d+\)$/;
    for (const chunk of chunks) expect(chunk).toMatch(suffix);
    const bodies = chunks.map((c) => c.replace(suffix, ''));
    expect(bodies[0]).toMatch(/```python\n[\s\S]*\n```$/);
    for (const middle of bodies.slice(1, -1)) {
      expect(middle.startsWith('```python\n')).toBe(true);
      expect(middle.endsWith('\n```')).toBe(true);
    }
    // Every chunk renders as balanced fences.
    for (const body of bodies) expect((body.match(/```/g) ?? []).length % 2).toBe(0);
    expect(bodies.at(-1)?.endsWith('Done.')).toBe(true);
  });

  it('reopens a bare fence without a language', () => {
    const code = Array.from({ length: 10 }, (_, i) => `row ${i} of data`).join('\n');
    const chunks = splitMessage(`\`\`\`\n${code}\n\`\`\``, 60, 'chars');
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks[1]?.startsWith('```\n')).toBe(true);
    expect(chunks[0]).toMatch(/\n``` \(1\/\d+\)$/);
  });

  it('does not split inside an inline code span when a space precedes it', () => {
    const text = 'hello world `some code span here` trailing words';
    expect(splitMessage(text, 40, 'chars')).toEqual([
      'hello world (1/3)',
      '`some code span here` (2/3)',
      'trailing words (3/3)',
    ]);
  });

  it('uses as many suffix digits as N needs and still fits', () => {
    const text = 'y'.repeat(3000);
    const chunks = splitMessage(text, 30, 'chars');
    expect(chunks.length).toBeGreaterThan(99);
    expect(chunks.at(-1)).toMatch(new RegExp(` \\(${chunks.length}/${chunks.length}\\)$`));
    for (const chunk of chunks) expect(codePointLength(chunk)).toBeLessThanOrEqual(30);
    expect(chunks.map((c) => c.replace(/ \(\d+\/\d+\)$/, '')).join('')).toBe(text);
  });

  it('measures in the descriptor unit: emoji count 1 in chars and 2 in utf16', () => {
    const text = '\u{1F600}'.repeat(30);
    expect(splitMessage(text, 30, 'chars')).toEqual([text]);
    const utf16 = splitMessage(text, 30, 'utf16');
    expect(utf16.length).toBeGreaterThan(1);
    for (const chunk of utf16) {
      expect(chunk.length).toBeLessThanOrEqual(30);
      expect(hasLoneSurrogate(chunk)).toBe(false);
    }
  });

  it('hard-splits without suffixes or fence repair below MIN_DECORATED_LIMIT', () => {
    expect(MIN_DECORATED_LIMIT).toBe(24);
    expect(splitMessage('abcdefghij'.repeat(3), 10, 'chars')).toEqual([
      'abcdefghij',
      'abcdefghij',
      'abcdefghij',
    ]);
    expect(splitMessage('```py\nx = 1\n```', 6, 'chars')).toEqual(['```py\n', 'x = 1\n', '```']);
    // A surrogate pair is never cut, even when only one unit of budget is left.
    expect(splitMessage('ab\u{1F600}cd', 3, 'utf16')).toEqual(['ab', '\u{1F600}c', 'd']);
  });

  it('chunkSuffix is one-based', () => {
    expect(chunkSuffix(0, 3)).toBe(' (1/3)');
    expect(chunkSuffix(2, 3)).toBe(' (3/3)');
  });
});

describe('lengths', () => {
  it('counts code points for chars and UTF-16 units for utf16 (reference §7.4)', () => {
    expect(messageLength('hi \u{1F600} é', 'chars')).toBe(6);
    expect(messageLength('hi \u{1F600} é', 'utf16')).toBe(7);
    expect(messageLength('', 'chars')).toBe(0);
    expect(codePointLength('\u{1F469}\u200D\u{1F4BB}')).toBe(3);
    expect(utf16Length('\u{1F469}\u200D\u{1F4BB}')).toBe(5);
    // A lone surrogate counts as one code point, like Python's len on a str.
    expect(codePointLength('a\uD800b')).toBe(3);
    expect(codePointLength('\uDC00\uD800')).toBe(2);
  });

  it('codePointLength agrees with [...text].length', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        expect(codePointLength(text)).toBe([...text].length);
      }),
      { numRuns: 200 },
    );
  });

  it('indexForBudget gives the longest prefix within budget and never splits a surrogate pair', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 40 }),
        fc.integer({ min: -2, max: 50 }),
        units,
        (text, budget, unit) => {
          const index = indexForBudget(text, budget, unit);
          expect(index).toBeGreaterThanOrEqual(0);
          expect(index).toBeLessThanOrEqual(text.length);
          expect(hasLoneSurrogate(text.slice(0, index))).toBe(false);
          expect(hasLoneSurrogate(text.slice(index))).toBe(false);
          expect(messageLength(text.slice(0, index), unit)).toBeLessThanOrEqual(Math.max(0, budget));
          if (index < text.length) {
            const next = [...text.slice(index)][0] as string;
            expect(messageLength(text.slice(0, index + next.length), unit)).toBeGreaterThan(budget);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('indexForBudget examples', () => {
    expect(indexForBudget('ab\u{1F600}', 3, 'utf16')).toBe(2);
    expect(indexForBudget('ab\u{1F600}', 4, 'utf16')).toBe(4);
    expect(indexForBudget('ab\u{1F600}', 3, 'chars')).toBe(4);
    expect(indexForBudget('\u{1F600}', 1, 'utf16')).toBe(0);
    expect(indexForBudget('abc', 0, 'chars')).toBe(0);
    expect(indexForBudget('abc', 10, 'utf16')).toBe(3);
  });
});
