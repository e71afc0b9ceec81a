import type { LenUnit } from './descriptor.js';

/** Unicode code points (Python `len`), without allocating an array. */
export function codePointLength(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    // A high surrogate followed by a low one is a single code point.
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}

/** UTF-16 code units (Telegram's unit): what JavaScript already counts. */
export function utf16Length(text: string): number {
  return text.length;
}

export function messageLength(text: string, unit: LenUnit): number {
  return unit === 'chars' ? codePointLength(text) : utf16Length(text);
}

export function lengthFunction(unit: LenUnit): (text: string) => number {
  return unit === 'chars' ? codePointLength : utf16Length;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/**
 * The largest UTF-16 index `i` such that `text.slice(0, i)` measures at most `budget` units and `i`
 * does not fall between the halves of a surrogate pair.
 */
export function indexForBudget(text: string, budget: number, unit: LenUnit): number {
  if (budget <= 0) return 0;
  if (unit === 'utf16') {
    let index = Math.min(budget, text.length);
    if (index < text.length && index > 0 && isHighSurrogate(text.charCodeAt(index - 1))) index--;
    return index;
  }
  let units = 0;
  let index = 0;
  while (index < text.length && units < budget) {
    const code = text.charCodeAt(index);
    const pair =
      isHighSurrogate(code) && index + 1 < text.length && (text.charCodeAt(index + 1) & 0xfc00) === 0xdc00;
    index += pair ? 2 : 1;
    units++;
  }
  return index;
}
