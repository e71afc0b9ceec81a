import type { LenUnit } from './descriptor.js';
import { codePointLength, indexForBudget, lengthFunction } from './length.js';

/**
 * The reference message splitter (`truncate_message`, reference §7.4), measured in the descriptor's
 * unit. Differences from the reference, all of which only matter where the reference would emit a
 * chunk over the limit:
 * - the ` (i/N)` reserve grows past 10 units when N needs more digits;
 * - a reopened fence whose language tag leaves no room is reopened without it, then not at all;
 * - limits too small for any decoration are split hard, without suffixes or fence repair;
 * - a split never falls between the halves of a surrogate pair.
 */

const FENCE_CLOSE = '\n```';
const DEFAULT_SUFFIX_RESERVE = 10;
/** Below this, suffix + fence repair cannot fit beside any text: hard split only. */
export const MIN_DECORATED_LIMIT = 24;

export interface SplitPart {
  /** Text taken from the original message. */
  body: string;
  /** Whitespace dropped between this part and the next (the reference `lstrip`). */
  gap: string;
  /** Fence reopened in front of `body` (e.g. "```ts\n"), or "". */
  reopen: string;
  /** Whether "\n```" was appended because `body` ended inside a code block. */
  closed: boolean;
}

export function chunkSuffix(index: number, total: number): string {
  return ` (${index + 1}/${total})`;
}

/** The structured split; `splitMessage` formats it. Exposed so tests can check nothing is lost. */
export function splitMessageParts(text: string, limit: number, unit: LenUnit): SplitPart[] {
  const len = lengthFunction(unit);
  if (len(text) <= limit) return [{ body: text, gap: '', reopen: '', closed: false }];
  if (limit < MIN_DECORATED_LIMIT) return hardSplit(text, Math.max(1, limit), unit);
  let reserve = DEFAULT_SUFFIX_RESERVE;
  for (;;) {
    const parts = decoratedSplit(text, limit, unit, reserve);
    const needed = len(chunkSuffix(parts.length - 1, parts.length));
    if (needed <= reserve) return parts;
    reserve = needed;
  }
}

/** Split `text` so that every chunk measures at most `limit` units of `unit`. */
export function splitMessage(text: string, limit: number, unit: LenUnit): string[] {
  return formatParts(splitMessageParts(text, limit, unit), limit);
}

export function formatParts(parts: SplitPart[], limit: number): string[] {
  if (parts.length === 1) {
    const only = parts[0] as SplitPart;
    return [only.reopen + only.body + (only.closed ? FENCE_CLOSE : '')];
  }
  const decorate = limit >= MIN_DECORATED_LIMIT;
  return parts.map((part, i) => {
    const chunk = part.reopen + part.body + (part.closed ? FENCE_CLOSE : '');
    return decorate ? chunk + chunkSuffix(i, parts.length) : chunk;
  });
}

function hardSplit(text: string, limit: number, unit: LenUnit): SplitPart[] {
  const parts: SplitPart[] = [];
  let rest = text;
  while (rest.length > 0) {
    const cut = Math.max(indexForBudget(rest, limit, unit), firstCodePointLength(rest));
    parts.push({ body: rest.slice(0, cut), gap: '', reopen: '', closed: false });
    rest = rest.slice(cut);
  }
  return parts;
}

function firstCodePointLength(text: string): number {
  const code = text.charCodeAt(0);
  return code >= 0xd800 && code <= 0xdbff && (text.charCodeAt(1) & 0xfc00) === 0xdc00 ? 2 : 1;
}

function decoratedSplit(text: string, limit: number, unit: LenUnit, reserve: number): SplitPart[] {
  const len = lengthFunction(unit);
  const fenceLen = len(FENCE_CLOSE);
  const parts: SplitPart[] = [];
  let remaining = text;
  // Language of a code block left open by the previous chunk ("" for a bare fence), else null.
  let carryLang: string | null = null;

  while (remaining.length > 0) {
    let reopen: string = carryLang === null ? '' : `\`\`\`${carryLang}\n`;
    if (reopen && limit - reserve - len(reopen) - fenceLen < 1) reopen = '```\n';
    if (reopen && limit - reserve - len(reopen) - fenceLen < 1) reopen = '';
    const headroom = limit - reserve - len(reopen) - fenceLen;

    if (len(reopen) + len(remaining) <= limit - reserve) {
      parts.push({ body: remaining, gap: '', reopen, closed: false });
      break;
    }

    const windowEnd = Math.max(indexForBudget(remaining, headroom, unit), firstCodePointLength(remaining));
    const region = remaining.slice(0, windowEnd);
    // The reference compares positions in code points; these helpers keep that while slicing UTF-16.
    const cpLimit = codePointLength(region);
    const cpAt = (index: number) => (index < 0 ? index : codePointLength(region.slice(0, index)));

    let splitAt = region.lastIndexOf('\n');
    if (cpAt(splitAt) < Math.floor(cpLimit / 2)) splitAt = region.lastIndexOf(' ');
    if (splitAt < 1) splitAt = windowEnd;

    const candidate = remaining.slice(0, splitAt);
    if ((countOf(candidate, '`') - countOf(candidate, '\\`')) % 2 === 1) {
      let lastTick = candidate.lastIndexOf('`');
      while (lastTick > 0 && candidate[lastTick - 1] === '\\')
        lastTick = candidate.lastIndexOf('`', lastTick - 1);
      if (lastTick > 0) {
        const safe = Math.max(
          candidate.lastIndexOf(' ', lastTick - 1),
          candidate.lastIndexOf('\n', lastTick - 1),
        );
        if (cpAt(safe) > Math.floor(cpLimit / 4)) splitAt = safe;
      }
    }

    const body = remaining.slice(0, splitAt);
    const after = remaining.slice(splitAt);
    const next = after.trimStart();
    const gap = after.slice(0, after.length - next.length);
    remaining = next;

    let inCode: boolean = carryLang !== null;
    let lang: string = carryLang ?? '';
    for (const line of body.split('\n')) {
      const stripped = line.trim();
      if (!stripped.startsWith('```')) continue;
      if (inCode) {
        inCode = false;
        lang = '';
      } else {
        inCode = true;
        const tag = stripped.slice(3).trim();
        lang = tag ? (tag.split(/\s+/)[0] ?? '') : '';
      }
    }
    parts.push({ body, gap, reopen, closed: inCode });
    carryLang = inCode ? lang : null;
  }
  return parts;
}

function countOf(text: string, needle: string): number {
  let count = 0;
  for (let i = text.indexOf(needle); i !== -1; i = text.indexOf(needle, i + needle.length)) count++;
  return count;
}
