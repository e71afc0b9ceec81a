import { execFile, spawn } from 'node:child_process';
import {
  accessSync,
  chmodSync,
  chownSync,
  constants,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './ports.js';

/**
 * A private, throw-away Postgres server for tests: `initdb` into a temp dir, `pg_ctl start` on
 * 127.0.0.1 with a free port and the Unix socket inside the temp dir, trust authentication,
 * durability switched off (it is thrown away). When the test process runs as root (CI does),
 * initdb and the server run as the `postgres` system user (created by Debian's package), or
 * `nobody` if there is none, because Postgres refuses to run as root.
 *
 * Binaries are looked up in $PG_BIN, then /usr/lib/postgresql/<newest>/bin (Debian), then PATH.
 * Without them the Postgres tests skip, unless RELAY_REQUIRE_POSTGRES=1 (CI), which makes it an error.
 */

const execFileAsync = promisify(execFile);

export interface PostgresServer {
  /** URL of an empty database created at start. */
  url: string;
  /**
   * Create another empty database on the same server and return its URL. `options` is appended
   * to CREATE DATABASE as given (e.g. `TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en'`).
   */
  createDatabase(options?: string): Promise<string>;
  /**
   * Create an empty schema in the `relay` database and return a URL whose connections use it as
   * their search_path: a cheaper fresh store than a new database (advisory locks are shared).
   */
  createSchema(): Promise<string>;
  /** Stop the server (immediate shutdown) and delete its temp dir. Idempotent. */
  stop(): Promise<void>;
}

const isExecutable = (path: string): boolean => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/** The directory holding `initdb`, `pg_ctl` and `postgres`, or null when Postgres is not installed. */
export function findPostgresBin(): string | null {
  const candidates: string[] = [];
  if (process.env.PG_BIN) candidates.push(process.env.PG_BIN);
  try {
    const versions = readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(join('/usr/lib/postgresql', v, 'bin'));
  } catch {
    // not a Debian layout
  }
  candidates.push(...(process.env.PATH ?? '').split(delimiter).filter(Boolean));
  for (const dir of candidates) {
    if (['initdb', 'pg_ctl', 'postgres'].every((bin) => isExecutable(join(dir, bin)))) return dir;
  }
  return null;
}

const POSTGRES_BIN = findPostgresBin();

/**
 * Why Postgres tests cannot run here, or null if they can. With `RELAY_REQUIRE_POSTGRES=1` (CI) a
 * missing installation is an error instead of a skip.
 */
export const postgresUnavailable: string | null = POSTGRES_BIN
  ? null
  : 'Postgres binaries (initdb, pg_ctl, postgres) not found in $PG_BIN, /usr/lib/postgresql/*/bin or PATH; ' +
    'install them (Debian: apt-get install -y postgresql) to run the Postgres store tests';

if (postgresUnavailable && process.env.RELAY_REQUIRE_POSTGRES === '1') {
  throw new Error(`RELAY_REQUIRE_POSTGRES=1 but ${postgresUnavailable}`);
}

/** uid/gid to run Postgres as: ourselves (null), unless we are root. */
async function accountFromPasswd(): Promise<{ uid: number; gid: number } | null> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  for (const name of ['postgres', 'nobody']) {
    try {
      const { stdout } = await execFileAsync('getent', ['passwd', name]);
      const fields = stdout.trim().split(':');
      const uid = Number(fields[2]);
      const gid = Number(fields[3]);
      if (Number.isInteger(uid) && Number.isInteger(gid) && uid !== 0) return { uid, gid };
    } catch {
      // no such user
    }
  }
  throw new Error('running as root, but there is neither a postgres nor a nobody user to run Postgres as');
}

async function run(
  bin: string,
  args: string[],
  account: { uid: number; gid: number } | null,
): Promise<{ stdout: string; stderr: string }> {
  try {
    return await execFileAsync(bin, args, {
      ...(account ? { uid: account.uid, gid: account.gid } : {}),
      // The server's own user may not be able to read the caller's cwd (e.g. /root/...).
      cwd: '/',
      env: { ...process.env, LC_ALL: 'C', LANG: 'C', PGTZ: 'UTC' },
      timeout: 120_000,
    });
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; message?: string };
    throw new Error(
      `${bin} ${args.join(' ')} failed: ${failed.message}\n${failed.stdout ?? ''}${failed.stderr ?? ''}`,
    );
  }
}

let databaseCounter = 0;

/** Start a private Postgres server; throws if Postgres is not installed (check `postgresUnavailable`). */
export async function startPostgres(): Promise<PostgresServer> {
  if (!POSTGRES_BIN) throw new Error(postgresUnavailable ?? 'Postgres not found');
  const bin = POSTGRES_BIN;
  const account = await accountFromPasswd();
  const dir = mkdtempSync(join(tmpdir(), 'hermes-pg-'));
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  if (account) {
    chownSync(dir, account.uid, account.gid);
    chmodSync(dir, 0o700);
  }
  let stopped = false;
  const pgCtlStop = ['stop', '-D', data, '-m', 'immediate', '-w', '-t', '60'];
  // If this process dies without calling stop() (crash, killed worker), a detached watchdog shell
  // sends the postmaster SIGQUIT (immediate shutdown) and deletes the temp dir.
  const watchdog = spawn(
    '/bin/sh',
    [
      '-c',
      'while kill -0 "$0" 2>/dev/null; do sleep 1; done; ' +
        'pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null) && kill -QUIT "$pid" 2>/dev/null; sleep 2; rm -rf "$2"',
      String(process.pid),
      data,
      dir,
    ],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.unref();
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (watchdog.pid !== undefined && watchdog.exitCode === null) {
      try {
        process.kill(-watchdog.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    try {
      // Also after a failed or timed-out start: a server may be up all the same.
      if (existsSync(join(data, 'postmaster.pid'))) await run(join(bin, 'pg_ctl'), pgCtlStop, account);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  try {
    await run(
      join(bin, 'initdb'),
      ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync'],
      account,
    );
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      const options = [
        '-c listen_addresses=127.0.0.1',
        `-c port=${port}`,
        `-c unix_socket_directories='${dir}'`,
        '-c fsync=off',
        '-c synchronous_commit=off',
        '-c full_page_writes=off',
        '-c max_connections=100',
        '-c shared_buffers=32MB',
        '-c log_min_messages=warning',
      ].join(' ');
      try {
        await run(
          join(bin, 'pg_ctl'),
          ['start', '-D', data, '-l', log, '-w', '-t', '60', '-o', options],
          account,
        );
        break;
      } catch (error) {
        // Another process may have taken the port between freePort() and the bind.
        if (attempt >= 3) {
          const serverLog = existsSync(log) ? readFileSync(log, 'utf8').slice(-4000) : '(no server log)';
          throw new Error(`${(error as Error).message}\nserver log:\n${serverLog}`);
        }
      }
    }
    const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const createDatabase = async (options = ''): Promise<string> => {
      const name = `relay_${process.pid}_${++databaseCounter}`;
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} ${options}`);
      } finally {
        await admin.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    };
    const url = await createDatabase();
    let schemaCounter = 0;
    const createSchema = async (): Promise<string> => {
      const name = `relay_${++schemaCounter}`;
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE SCHEMA ${pg.escapeIdentifier(name)}`);
      } finally {
        await client.end();
      }
      return `${url}?options=${encodeURIComponent(`-c search_path=${name}`)}`;
    };
    return { url, createDatabase, createSchema, stop };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}
