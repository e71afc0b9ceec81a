import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { packageInfo } from '../../src/common/package-info.js';
import { requiredNodeRange } from '../../src/gateway/doctor.js';
import { hermes as runCli } from '../support/processes.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
  engines: { node: string };
};

describe('hermes version', () => {
  it('--json prints name, version, node, platform and arch', async () => {
    const result = await runCli(['version', '--json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      name: 'hermes-relay',
      version: pkg.version,
      node: process.versions.node,
      platform: process.platform,
      arch: process.arch,
    });
  });

  it('prints one readable line, and --version still prints the bare version', async () => {
    const plain = await runCli(['version']);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toBe(
      `hermes-relay ${pkg.version} (node ${process.versions.node}, ${process.platform}-${process.arch})\n`,
    );
    const flag = await runCli(['--version']);
    expect(flag.code).toBe(0);
    expect(flag.stdout.trim()).toBe(pkg.version);
  });

  it('one reader of package.json serves the version and doctor’s Node range', () => {
    expect(packageInfo().version).toBe(pkg.version);
    expect(requiredNodeRange()).toBe(pkg.engines.node);
  });
});
