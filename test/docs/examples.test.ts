import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * The examples of docs/embedding.md are real files, compiled here against the package's own typings
 * (`hermes-relay/*` resolves to dist/ through package.json `exports`), so they cannot rot.
 * test/cli/package.test.ts compiles and runs them again against the installed tarball.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const EXAMPLES = join(ROOT, 'docs', 'examples');

describe('docs/examples', () => {
  it('type-check with strict settings against the built package', async () => {
    expect(readdirSync(EXAMPLES).filter((file) => file.endsWith('.ts'))).toEqual(
      expect.arrayContaining(['console-adapter.ts', 'embed-connector.ts', 'embed-gateway.ts']),
    );
    const tsc = join(ROOT, 'node_modules', '.bin', 'tsc');
    const result = await promisify(execFile)(tsc, ['-p', join(EXAMPLES, 'tsconfig.json')], {
      cwd: ROOT,
      timeout: 60_000,
    }).then(
      ({ stdout }) => ({ code: 0, output: stdout }),
      (error: { code?: number; stdout?: string }) => ({ code: error.code ?? 1, output: error.stdout ?? '' }),
    );
    expect(result.output).toBe('');
    expect(result.code).toBe(0);
  });

  it('are shown in docs/embedding.md exactly as they are', () => {
    const page = readFileSync(join(ROOT, 'docs', 'embedding.md'), 'utf8');
    for (const file of ['embed-connector.ts', 'embed-gateway.ts', 'console-adapter.ts'])
      expect(page, file).toContain(
        `\`\`\`ts\n${readFileSync(join(EXAMPLES, file), 'utf8').trimEnd()}\n\`\`\`\n`,
      );
  });
});
