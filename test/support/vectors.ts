import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The shared cross-language vectors live beside the repository, in ../shared/vectors. */
export const VECTORS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/vectors');

export function loadVectors<T>(name: string): T {
  const file = join(VECTORS_DIR, name);
  if (!existsSync(file)) {
    throw new Error(
      `shared test vectors missing: ${file} does not exist. Check out the shared/ folder beside this repository.`,
    );
  }
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}
