import { packageInfo } from '../common/package-info.js';

/** The package version (package.json, read by `src/common/package-info.ts`). */
export const VERSION: string = packageInfo().version;

/** What `hermes version` prints. */
export function versionInfo(): {
  name: string;
  version: string;
  node: string;
  platform: string;
  arch: string;
} {
  const { name, version } = packageInfo();
  return { name, version, node: process.versions.node, platform: process.platform, arch: process.arch };
}
