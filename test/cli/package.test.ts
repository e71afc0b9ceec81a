import { execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePortRange } from '../support/ports.js';
import { tempDir, until } from '../support/processes.js';

/**
 * The package as a user gets it: `npm pack`, installed into an empty folder with `npm install`,
 * then used from there only — its entry points from plain Node, its typings from a TypeScript
 * consumer (the repo's own `tsc`), its `hermes` binary.
 *
 * better-sqlite3's install script (prebuild-install, else node-gyp) would compile SQLite for a
 * minute on two cores, as no prebuilt binary can be downloaded here. The test hands that script the
 * binary this checkout's `npm ci` already built, as a local prebuild of the same version (pinned
 * with `overrides`); the script still runs and the module is still loaded from the install.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TSC = join(ROOT, 'node_modules', '.bin', 'tsc');
const run = promisify(execFile);

/** The environment without npm's lifecycle variables (they would point npm at this repo) or our settings. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env))
    if (!/^(npm_|HERMES_|RELAY_|GATEWAY_|TELEGRAM_|DISCORD_|OPENAI_)/i.test(key)) env[key] = value;
  return { ...env, ...extra };
}

interface Spawned {
  output: () => string;
  waitFor: (pattern: RegExp, timeoutMs: number) => Promise<void>;
  stop: (signal: NodeJS.Signals) => Promise<number | null>;
}

/** A command of the installed package, with its stdout and stderr collected. */
function spawnProcess(
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Spawned {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));
  let done = false;
  void exited.then(() => {
    done = true;
  });
  return {
    output: () => output,
    waitFor: async (pattern, timeoutMs) => {
      const seen = await until(
        () => (pattern.test(output) ? 'matched' : done ? 'exited' : undefined),
        timeoutMs,
        `${pattern} in the output of ${command} ${args.join(' ')}`,
        50,
      ).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}; output so far:\n${output.slice(-3000)}`);
      });
      if (seen === 'exited') throw new Error(`exited before ${pattern}; output:\n${output.slice(-3000)}`);
    },
    stop: async (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

interface PackedFile {
  path: string;
}

const work = tempDir('package');
const app = join(work.path, 'app');
let packed: { filename: string; files: PackedFile[]; size: number; unpackedSize: number };
let manifest: {
  version: string;
  bin: Record<string, string>;
  exports: Record<string, string | { types: string; default: string }>;
  files: string[];
};
let demo: Spawned | undefined;

beforeAll(async () => {
  if (!existsSync(join(ROOT, 'dist', 'src', 'index.d.ts')))
    throw new Error('dist/ has no typings: run `npm run build` first');
  manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as typeof manifest;

  const packDir = join(work.path, 'pack');
  mkdirSync(packDir);
  const pack = await run('npm', ['pack', '--json', '--pack-destination', packDir], {
    cwd: ROOT,
    env: cleanEnv(),
    maxBuffer: 16 * 1024 * 1024,
  });
  packed = (JSON.parse(pack.stdout) as (typeof packed)[])[0] as typeof packed;

  // better-sqlite3's install script finds its binary here (see above).
  const sqliteRoot = join(ROOT, 'node_modules', 'better-sqlite3');
  const sqliteVersion = (
    JSON.parse(readFileSync(join(sqliteRoot, 'package.json'), 'utf8')) as { version: string }
  ).version;
  const prebuilds = join(work.path, 'prebuilds');
  const staging = join(work.path, 'prebuild', 'build', 'Release');
  mkdirSync(prebuilds);
  mkdirSync(staging, { recursive: true });
  const binary = join(sqliteRoot, 'build', 'Release', 'better_sqlite3.node');
  if (existsSync(binary)) {
    copyFileSync(binary, join(staging, 'better_sqlite3.node'));
    const asset = `better-sqlite3-v${sqliteVersion}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
    await run('tar', ['-czf', join(prebuilds, asset), '-C', join(work.path, 'prebuild'), 'build']);
  }

  mkdirSync(app);
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({
      name: 'consumer',
      private: true,
      type: 'module',
      overrides: { 'better-sqlite3': sqliteVersion },
      allowScripts: { 'better-sqlite3': true },
    }),
  );
  const started = performance.now();
  await run(
    'npm',
    ['install', '--no-audit', '--no-fund', '--prefer-offline', join(packDir, packed.filename)],
    {
      cwd: app,
      env: cleanEnv({ npm_config_better_sqlite3_local_prebuilds: prebuilds }),
      timeout: 280_000,
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  console.info(
    `npm install of ${packed.filename} (${packed.files.length} files, ${packed.size} bytes packed): ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );

  // The docs' examples and a small consumer, against the installed package: type-checked, and the
  // examples compiled to JavaScript for the plain-Node run.
  mkdirSync(join(app, 'src'));
  for (const file of readdirSync(join(ROOT, 'docs', 'examples')))
    if (file.endsWith('.ts')) copyFileSync(join(ROOT, 'docs', 'examples', file), join(app, 'src', file));
  writeFileSync(join(app, 'src', 'consumer.ts'), CONSUMER_TS);
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(consumerTsconfig(['src/*.ts'])));
  copyFileSync(join(ROOT, 'test', 'cli', 'package-consumer.mjs'), join(app, 'package-consumer.mjs'));
}, 300_000);

afterAll(async () => {
  await demo?.stop('SIGINT');
  work.remove();
});

const CONSUMER_TS = `import * as main from 'hermes-relay';
import { type PlatformAdapter, type RunningConnector, startConnector } from 'hermes-relay/connector';
import { type Agent, type RunningGateway, startGateway } from 'hermes-relay/gateway';
import { type GatewayFrame, parseGatewayFrame } from 'hermes-relay/protocol';
import pkg from 'hermes-relay/package.json' with { type: 'json' };

const parsed = parseGatewayFrame({ type: 'hello' });
export const frame: GatewayFrame | undefined = parsed.kind === 'frame' ? parsed.frame : undefined;
export const same: [typeof startConnector, typeof startGateway] = [main.startConnector, main.startGateway];
export type Parts = [RunningConnector, RunningGateway, PlatformAdapter, Agent];
export const version: string = pkg.version;
`;

function consumerTsconfig(include: string[], extra: Record<string, unknown> = {}): unknown {
  return {
    compilerOptions: {
      target: 'ES2022',
      lib: ['ES2023'],
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      noUncheckedIndexedAccess: true,
      // The package's own .d.ts files are checked too.
      skipLibCheck: false,
      resolveJsonModule: true,
      // Node's types from this repo (the consumer folder has no @types/node).
      typeRoots: [join(ROOT, 'node_modules', '@types')],
      types: ['node'],
      rootDir: 'src',
      outDir: 'examples',
      ...extra,
    },
    include,
  };
}

async function tsc(args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(TSC, args, { cwd: app, env: cleanEnv(), timeout: 60_000 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof failed.code === 'number' ? failed.code : 1,
      output: `${failed.stdout}${failed.stderr}`,
    };
  }
}

describe('the npm package', () => {
  it('ships the build, its typings, README and LICENSE — no tests, benchmarks or source maps', () => {
    const paths = packed.files.map((file) => file.path);
    for (const path of paths)
      expect(path).toMatch(/^(dist\/src\/|dist\/web\/|LICENSE$|README\.md$|package\.json$)/);
    expect(paths.filter((path) => path.endsWith('.map'))).toEqual([]);
    expect(paths).toContain('LICENSE');
    expect(readFileSync(join(ROOT, 'LICENSE'), 'utf8')).toMatch(
      /^MIT License\n\nCopyright \(c\) 2026 hermes-relay contributors/,
    );
    expect(Object.keys(manifest.exports).sort()).toEqual([
      '.',
      './connector',
      './gateway',
      './package.json',
      './protocol',
    ]);
    for (const target of Object.values(manifest.exports)) {
      const targets = typeof target === 'string' ? [target] : [target.types, target.default];
      for (const file of targets) expect(paths).toContain(file.replace(/^\.\//, ''));
    }
    for (const bin of Object.values(manifest.bin)) expect(paths).toContain(bin);
  });

  it('type-checks a TypeScript consumer and the docs examples against the installed typings', async () => {
    const checked = await tsc(['-p', '.', '--noEmit']);
    expect(checked.output).toBe('');
    expect(checked.code).toBe(0);

    // The typings are real types, not `any`: a wrong use is a compile error.
    mkdirSync(join(app, 'wrong'));
    writeFileSync(
      join(app, 'wrong', 'wrong.ts'),
      "import { VERSION } from 'hermes-relay';\nimport { startConnector } from 'hermes-relay/connector';\n" +
        'export const n: number = VERSION;\nexport const c = startConnector({ port: 1 });\n' +
        "import { startConnector as deep } from 'hermes-relay/dist/src/connector/connector.js';\nexport { deep };\n",
    );
    writeFileSync(
      join(app, 'tsconfig.wrong.json'),
      JSON.stringify(consumerTsconfig(['wrong/wrong.ts'], { rootDir: 'wrong' })),
    );
    const wrong = await tsc(['-p', 'tsconfig.wrong.json', '--noEmit']);
    expect(wrong.code).not.toBe(0);
    expect(wrong.output).toContain("error TS2322: Type 'string' is not assignable to type 'number'");
    expect(wrong.output).toMatch(/wrong\.ts\(4,\d+\): error TS\d+/);
    // Internals are not part of the package's surface.
    expect(wrong.output).toMatch(/wrong\.ts\(5,\d+\): error TS2307/);
  });

  it('imports every entry point from plain Node and runs a connector, a gateway and the docs adapter in-process', async () => {
    const compiled = await tsc(['-p', '.']);
    expect(compiled.output).toBe('');
    const dataDir = join(work.path, 'embedded');
    mkdirSync(dataDir);
    const { stdout } = await run(process.execPath, ['package-consumer.mjs', dataDir], {
      cwd: app,
      env: cleanEnv(),
      timeout: 50_000,
    });
    const report = JSON.parse(stdout) as Record<string, unknown>;
    expect(report).toMatchObject({
      version: manifest.version,
      mainReexports: true,
      deepImport: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
      hello: { type: 'hello', platform: 'relay', botId: '' },
      invalidFrame: 'invalid',
      sessionKey: 'agent:main:local:dm:console',
      healthz: 200,
      chatPage: 200,
      enrolled: ['gw-embedded'],
      gatewayExit: 0,
    });
    expect(report.connectorUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(report.printed).toContain('echo: hello from the console');
    expect(existsSync(join(dataDir, 'connector.db'))).toBe(true);
  });

  it('runs the installed `hermes --version` and `hermes demo` up to its banner, writing only where told', async () => {
    const hermes = join(app, 'node_modules', '.bin', 'hermes');
    const version = await run(hermes, ['--version'], { cwd: app, env: cleanEnv() });
    expect(version.stdout.trim()).toBe(manifest.version);

    const base = await freePortRange(3);
    const home = join(work.path, 'home');
    mkdirSync(home);
    demo = spawnProcess(
      hermes,
      ['demo', '--port-base', String(base), '--data-dir', join(work.path, 'demo')],
      { cwd: app, env: cleanEnv({ HOME: home, HERMES_AGENT: 'echo' }) },
    );
    await demo.waitFor(/Press Ctrl-C to stop/, 45_000);
    expect(demo.output()).toContain(`http://127.0.0.1:${base}/chat/demo`);
    const page = await fetch(`http://127.0.0.1:${base}/chat/demo`);
    expect(page.status).toBe(200);
    expect(await demo.stop('SIGINT')).toBe(0);
    expect(demo.output()).toContain('stopped.');
    demo = undefined;
    // Everything went under --data-dir: nothing in the consumer folder, nothing in $HOME.
    expect(existsSync(join(work.path, 'demo', 'connector.db'))).toBe(true);
    expect(readdirSync(app).sort()).toEqual(
      [
        'examples',
        'node_modules',
        'package-consumer.mjs',
        'package-lock.json',
        'package.json',
        'src',
        'tsconfig.json',
        'tsconfig.wrong.json',
        'wrong',
      ].sort(),
    );
    expect(readdirSync(home)).toEqual([]);
  });
});
