import { readFileSync } from 'node:fs';

/** What the CLI and `hermes doctor` need from package.json. */
export interface PackageInfo {
  name: string;
  version: string;
  /** `engines.node`, e.g. `>=20.19`. */
  nodeRange: string;
}

/** The Node range assumed when package.json cannot be read. */
export const DEFAULT_NODE_RANGE = '>=20.19';

let cached: PackageInfo | undefined;

/**
 * package.json of this package, read once: next to the build output (`dist/src/common` → three up)
 * or in the source tree (`src/common` → two up). The one reader of package.json at run time.
 */
export function packageInfo(): PackageInfo {
  if (cached) return cached;
  for (const candidate of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(candidate, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
        engines?: { node?: string };
      };
      if (pkg.name !== 'hermes-relay') continue;
      cached = {
        name: pkg.name,
        version: pkg.version ?? '0.0.0',
        nodeRange: pkg.engines?.node ?? DEFAULT_NODE_RANGE,
      };
      return cached;
    } catch {
      // next candidate
    }
  }
  cached = { name: 'hermes-relay', version: '0.0.0', nodeRange: DEFAULT_NODE_RANGE };
  return cached;
}
