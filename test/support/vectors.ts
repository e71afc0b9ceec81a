import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The cross-language vectors, kept in the repository (test/vectors/) so a clone stands alone. */
export const VECTORS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../vectors');

export function loadVectors<T>(name: string): T {
  return JSON.parse(readFileSync(join(VECTORS_DIR, name), 'utf8')) as T;
}
