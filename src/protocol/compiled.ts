import { z } from 'zod';

/**
 * A compiled fast path for a hot schema (issue 20), with zod as the one source of truth.
 *
 * `z.compile` (zod ≥ 4.5) generates, once, a flat validator for a schema and installs it in front of
 * the interpreted parser; the result is still a zod schema with the same type, methods and errors.
 * It refuses schemas it cannot model exactly, notably a `.catch()` whose value is a callback. For
 * such a schema the caller names a `twin`: the same schema with the refused part rewritten into an
 * equivalent that compiles (built from the same pieces, e.g. with `.extend()`), and the twin's
 * compiled parser is installed in front of the **original** with `z.withParser`:
 *
 * - a value the fast path accepts is returned as the twin parsed it (the tests in
 *   `test/protocol/compiled-equality.test.ts` run both on every vector and thousands of mutations
 *   and require the same success flag, the same output and the same key order, nested);
 * - anything it does not accept goes to the original's interpreted parse, so every rejection and
 *   every error message is the original's;
 * - where `new Function` is unavailable (or zod refuses the twin too) every parse is the original's
 *   interpreted one: slower, never different.
 */
export function withCompiledParser<S extends z.ZodType>(schema: S, twin: z.ZodType = schema): S {
  // Compiled on the first parse, not at import: a process that never parses one (the CLI) pays
  // nothing. `null`: zod refused it or `new Function` is unavailable, so every parse is the runtime's.
  let fast: z.ZodType | null | undefined;
  return z.withParser(schema, (input) => {
    if (fast === undefined) {
      try {
        fast = z.compile(twin, { strict: true });
      } catch {
        fast = null;
      }
    }
    if (fast === null) return z.INVALID;
    const result = fast.safeParse(input);
    return result.success ? (result.data as z.output<S>) : z.INVALID;
  });
}
