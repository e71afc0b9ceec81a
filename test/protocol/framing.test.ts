import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type DecodedChunk,
  encodeFrame,
  encodeFrames,
  encodeLine,
  FrameDecoder,
} from '../../src/protocol/index.js';

/** What a value looks like after one JSON round trip (-0 becomes 0, and so on). */
const normalise = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

const jsonValues = fc.array(fc.jsonValue({ maxDepth: 3, stringUnit: 'binary' }), {
  minLength: 0,
  maxLength: 8,
});

/** Cut `length` into pieces at the given (arbitrary, possibly repeated) offsets. */
function cuts(length: number, offsets: number[]): [number, number][] {
  const points = [...new Set(offsets.map((o) => o % (length + 1)))].sort((a, b) => a - b);
  const bounds = [0, ...points, length];
  const out: [number, number][] = [];
  for (let i = 0; i + 1 < bounds.length; i++) out.push([bounds[i] as number, bounds[i + 1] as number]);
  return out;
}

function feed(decoder: FrameDecoder, pieces: (string | Buffer | ArrayBuffer | Buffer[])[]): DecodedChunk {
  const all: DecodedChunk = { values: [], errors: [] };
  for (const piece of pieces) {
    const chunk = decoder.push(piece);
    all.values.push(...chunk.values);
    all.errors.push(...chunk.errors);
  }
  return all;
}

describe('encodeFrame', () => {
  it('is compact JSON terminated by exactly one newline', () => {
    expect(encodeFrame({ type: 'hello', platform: 'relay', botId: '' })).toBe(
      '{"type":"hello","platform":"relay","botId":""}\n',
    );
    expect(encodeLine({ a: 1 }) + encodeLine({ b: 'x\ny' })).toBe('{"a":1}\n{"b":"x\\ny"}\n');
    expect(encodeFrames([])).toBe('');
  });

  it('never puts a raw newline inside a frame', () => {
    fc.assert(
      fc.property(fc.jsonValue({ stringUnit: 'binary' }), (value) => {
        const frame = encodeLine(value as object);
        expect(frame.endsWith('\n')).toBe(true);
        expect(frame.indexOf('\n')).toBe(frame.length - 1);
      }),
      { numRuns: 200 },
    );
  });
});

describe('FrameDecoder: properties', () => {
  it('string messages split at arbitrary UTF-16 offsets decode to the same values in order', () => {
    fc.assert(
      fc.property(jsonValues, fc.array(fc.nat(), { maxLength: 12 }), (values, offsets) => {
        const text = values.map((value) => encodeLine(value as object)).join('');
        const pieces = cuts(text.length, offsets).map(([a, b]) => text.slice(a, b));
        const decoder = new FrameDecoder();
        const out = feed(decoder, pieces);
        expect(out.errors).toEqual([]);
        expect(out.values).toEqual(values.map(normalise));
        expect(decoder.pending).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('binary messages split at arbitrary byte offsets (inside multi-byte UTF-8) decode the same', () => {
    // Raw (unescaped) non-ASCII and astral characters so that cuts land inside UTF-8 sequences.
    const raw = fc.array(
      fc.record({ type: fc.constantFrom('inbound', 'descriptor'), text: fc.string({ unit: 'binary' }) }),
      { maxLength: 6 },
    );
    fc.assert(
      fc.property(raw, fc.array(fc.nat(), { maxLength: 16 }), fc.nat(2), (values, offsets, shape) => {
        const bytes = Buffer.from(values.map(encodeLine).join(''), 'utf8');
        const pieces = cuts(bytes.length, offsets).map(([a, b]) => {
          const slice = Buffer.from(bytes.subarray(a, b));
          if (shape === 0) return slice;
          if (shape === 1) return slice.buffer.slice(slice.byteOffset, slice.byteOffset + slice.length);
          const mid = Math.floor(slice.length / 2);
          return [slice.subarray(0, mid), slice.subarray(mid)];
        });
        const out = feed(new FrameDecoder(), pieces);
        expect(out.errors).toEqual([]);
        expect(out.values).toEqual(values);
      }),
      { numRuns: 300 },
    );
  });

  it('an astral character split across two Buffers is not replaced by U+FFFD', () => {
    const bytes = Buffer.from(encodeLine({ text: 'plug \u{1F50C} é' }), 'utf8');
    const at = bytes.indexOf(0xf0) + 2; // inside the 4-byte sequence
    const decoder = new FrameDecoder();
    expect(decoder.push(bytes.subarray(0, at))).toEqual({ values: [], errors: [] });
    expect(decoder.push(bytes.subarray(at)).values).toEqual([{ text: 'plug \u{1F50C} é' }]);
  });
});

describe('FrameDecoder: examples', () => {
  it('decodes several frames in one message', () => {
    const out = new FrameDecoder().push('{"a":1}\n{"b":2}\n[3]\n"four"\n5\n');
    expect(out).toEqual({ values: [{ a: 1 }, { b: 2 }, [3], 'four', 5], errors: [] });
  });

  it('keeps a trailing partial frame until its newline arrives', () => {
    const decoder = new FrameDecoder();
    expect(decoder.push('{"a":1}\n{"b":').values).toEqual([{ a: 1 }]);
    expect(decoder.pending).toBe(5);
    expect(decoder.push('2}').values).toEqual([]);
    expect(decoder.push('\n').values).toEqual([{ b: 2 }]);
    expect(decoder.pending).toBe(0);
  });

  it('does not decode a final frame that has no newline', () => {
    const decoder = new FrameDecoder();
    expect(decoder.push('{"a":1}').values).toEqual([]);
    expect(decoder.pending).toBe(7);
  });

  it('skips blank and whitespace-only lines, and tolerates CRLF and JSON whitespace', () => {
    const out = new FrameDecoder().push('\n\n   \n\t\r\n{"a": 1}\r\n  { "b" : [ 1 , 2 ] }  \n\n');
    expect(out).toEqual({ values: [{ a: 1 }, { b: [1, 2] }], errors: [] });
  });

  it('accepts Python json.dumps output with \\u escapes', () => {
    const out = new FrameDecoder().push('{"type": "hello", "platform": "caf\\u00e9 \\ud83d\\udd0c"}\n');
    expect(out.values).toEqual([{ type: 'hello', platform: 'café \u{1F50C}' }]);
  });

  it('reports bad lines in errors without throwing and keeps decoding after them', () => {
    const decoder = new FrameDecoder();
    let out: DecodedChunk | undefined;
    expect(() => {
      out = decoder.push('{"a":1}\nnot json\n{"b":2}\n{"unterminated":\n[1,2,]\n{"c":3}\n');
    }).not.toThrow();
    expect(out?.values).toEqual([{ a: 1 }, { b: 2 }, { c: 3 }]);
    expect(out?.errors.map((e) => e.line)).toEqual(['not json', '{"unterminated":', '[1,2,]']);
    for (const error of out?.errors ?? []) expect(error.error).toMatch(/^invalid JSON/);
    // The decoder is still usable afterwards.
    expect(decoder.push('{"d":4}\n')).toEqual({ values: [{ d: 4 }], errors: [] });
  });

  it('cuts the reported line to 200 characters', () => {
    const bad = `x${'y'.repeat(500)}`;
    const out = new FrameDecoder().push(`${bad}\n`);
    expect(out.errors).toHaveLength(1);
    expect(out.errors[0]?.line).toBe(bad.slice(0, 200));
  });

  it('reports an over-long line (in one message) and still decodes the next good frame', () => {
    const decoder = new FrameDecoder({ maxLineChars: 50 });
    const long = JSON.stringify({ pad: 'p'.repeat(100) });
    const out = decoder.push(`${long}\n{"ok":true}\n`);
    expect(out.values).toEqual([{ ok: true }]);
    expect(out.errors).toHaveLength(1);
    expect(out.errors[0]?.error).toContain('longer than 50');
  });

  it('accepts a line of exactly maxLineChars and rejects one character more', () => {
    const exact = JSON.stringify({ p: 'x'.repeat(42) }); // 50 characters
    expect(exact).toHaveLength(50);
    const decoder = new FrameDecoder({ maxLineChars: 50 });
    expect(decoder.push(`${exact}\n`)).toEqual({ values: [{ p: 'x'.repeat(42) }], errors: [] });
    const over = JSON.stringify({ p: 'x'.repeat(43) });
    const out = decoder.push(`${over}\n`);
    expect(out.values).toEqual([]);
    expect(out.errors).toHaveLength(1);
  });

  it('reports an over-long line spread over many messages once, discards it, then recovers', () => {
    const decoder = new FrameDecoder({ maxLineChars: 50 });
    const first = decoder.push(`{"pad":"${'p'.repeat(60)}`);
    expect(first.values).toEqual([]);
    expect(first.errors).toHaveLength(1);
    expect(decoder.pending).toBe(0);
    // More of the same line: dropped silently, nothing buffered.
    expect(decoder.push('q'.repeat(500))).toEqual({ values: [], errors: [] });
    expect(decoder.pending).toBe(0);
    // The tail of the long line is dropped; the next frame decodes.
    expect(decoder.push('"}\n{"next":1}\n')).toEqual({ values: [{ next: 1 }], errors: [] });
    expect(decoder.push('{"after":2}\n')).toEqual({ values: [{ after: 2 }], errors: [] });
  });

  it('bounds its buffer by maxLineChars whatever is fed', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 40 }), { maxLength: 20 }), (pieces) => {
        const decoder = new FrameDecoder({ maxLineChars: 30 });
        for (const piece of pieces) {
          expect(() => decoder.push(piece)).not.toThrow();
          expect(decoder.pending).toBeLessThanOrEqual(30);
        }
      }),
      { numRuns: 200 },
    );
  });
});
