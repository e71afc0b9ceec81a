import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { mintUpgradeToken } from '../src/auth/index.js';
import { MEDIA_MAX_BYTES } from '../src/protocol/index.js';
import { asyncWorkload, type BenchModule, type BenchResult, compare, type RunOptions } from './harness.js';
import {
  createBenchTenant,
  enrollBenchGateway,
  InjectAdapter,
  rssBytes,
  startBenchConnector,
  tempDir,
} from './support.js';

/**
 * The media plane (current §7.3): 5 MB uploads (`POST /relay/media`, authenticated, streamed to
 * disk) and downloads (`GET /relay/media/{id}`) through the connector, against a bare `node:http`
 * server in the same process that streams the same bytes to and from disk, same concurrency. And
 * the memory bound: RSS growth while 20 uploads of 25 MB run at once (the connector never holds a
 * body in memory).
 */

const MODULE = 'media';
const FILE_BYTES = 5 * 1024 * 1024;
const CONCURRENCY = 4;
const RATIO_TARGET = 0.7;
const PARALLEL_LARGE = 20;
const RSS_TARGET_BYTES = 64 * 1024 * 1024;
const OPTIONS: RunOptions = { warmupMs: 300, durationMs: 3_000, slices: 6, maxOps: 400 };

interface Target {
  host: string;
  port: number;
}

/** One HTTP exchange with `body` written in 256 KiB slices of the same buffer; resolves on the whole answer. */
function exchange(
  target: Target,
  method: 'POST' | 'GET',
  path: string,
  headers: Record<string, string>,
  body?: Buffer,
): Promise<{ status: number; text: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ ...target, method, path, headers }, (res) => {
      let bytes = 0;
      const head: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (head.length < 4) head.push(chunk);
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(head).toString(), bytes }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    if (!body) return req.end();
    const slice = 256 * 1024;
    let at = 0;
    const write = () => {
      while (at < body.length) {
        const ok = req.write(body.subarray(at, at + slice));
        at += slice;
        if (!ok) return req.once('drain', write);
      }
      req.end();
    };
    write();
  });
}

/** A bare node:http server doing the same disk work: stream an upload to a file, stream a file back. */
async function startBareMediaServer(
  dir: string,
  download: string,
): Promise<{ server: Server; target: Target }> {
  let next = 0;
  const server = createServer((req, res) => {
    if (req.method === 'POST') {
      const id = `bare-${next++}`;
      const path = join(dir, id);
      pipeline(req, createWriteStream(path))
        .then(() => {
          rmSync(path, { force: true });
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ id, size: FILE_BYTES }));
        })
        .catch(() => res.writeHead(500).end());
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': FILE_BYTES });
    createReadStream(download).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, target: { host: '127.0.0.1', port: (server.address() as AddressInfo).port } };
}

async function run(): Promise<BenchResult[]> {
  const dir = tempDir('media');
  const mediaDir = join(dir.path, 'media');
  const bareDir = join(dir.path, 'bare');
  mkdirSync(bareDir, { recursive: true });
  // The connector keeps media in `media/` beside its SQLite file: `mediaDir`.
  const { connector, store } = await startBenchConnector(join(dir.path, 'connector.db'), [
    new InjectAdapter('bench'),
  ]);
  const tenant = await createBenchTenant(store, 'bench-media');
  const secret = await enrollBenchGateway(store, tenant.tenantId, 'gw-bench-media');
  const relay: Target = { host: '127.0.0.1', port: connector.port };
  const file = randomBytes(FILE_BYTES);
  const auth = () => ({ authorization: `Bearer ${mintUpgradeToken('gw-bench-media', secret)}` });

  // One stored file to download on both sides.
  const first = await exchange(
    relay,
    'POST',
    '/relay/media',
    { ...auth(), 'content-type': 'application/octet-stream' },
    file,
  );
  const { id } = JSON.parse(first.text) as { id: string };
  const downloadPath = join(bareDir, 'download');
  await pipeline(
    (async function* () {
      yield file;
    })(),
    createWriteStream(downloadPath),
  );
  const bare = await startBareMediaServer(bareDir, downloadPath);

  const uploaded: string[] = [];
  const upload = asyncWorkload(
    `connector POST /relay/media, ${FILE_BYTES / 1024 / 1024} MB, ${CONCURRENCY} at once`,
    async () => {
      const answer = await exchange(
        relay,
        'POST',
        '/relay/media',
        { ...auth(), 'content-type': 'application/octet-stream' },
        file,
      );
      if (answer.status !== 200) throw new Error(`upload answered ${answer.status}`);
      uploaded.push((JSON.parse(answer.text) as { id: string }).id);
      // Keep the disk use of the run bounded: the bench measures the path, not the disk filling up.
      if (uploaded.length > 8) rmSync(join(mediaDir, uploaded.shift() as string), { force: true });
    },
    CONCURRENCY,
  );
  const bareUpload = asyncWorkload(
    'bare node:http streaming to a file',
    async () => {
      const answer = await exchange(
        bare.target,
        'POST',
        '/upload',
        { 'content-type': 'application/octet-stream' },
        file,
      );
      if (answer.status !== 200) throw new Error(`bare upload answered ${answer.status}`);
    },
    CONCURRENCY,
  );
  const download = asyncWorkload(
    `connector GET /relay/media/{id}, ${FILE_BYTES / 1024 / 1024} MB, ${CONCURRENCY} at once`,
    async () => {
      const answer = await exchange(relay, 'GET', `/relay/media/${id}`, auth());
      if (answer.status !== 200 || answer.bytes !== FILE_BYTES)
        throw new Error(`download answered ${answer.status}`);
    },
    CONCURRENCY,
  );
  const bareDownload = asyncWorkload(
    'bare node:http streaming a file',
    async () => {
      const answer = await exchange(bare.target, 'GET', '/download', {});
      if (answer.status !== 200 || answer.bytes !== FILE_BYTES) throw new Error('bare download failed');
    },
    CONCURRENCY,
  );

  try {
    // Memory first, from a fresh process state: 20 uploads at the 25 MB cap at once. The client writes slices of one shared buffer,
    // so what grows is the connector's own buffering.
    const large = Buffer.alloc(MEDIA_MAX_BYTES, 7);
    global.gc?.();
    const before = rssBytes(process.pid);
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssBytes(process.pid));
    }, 20);
    const started = performance.now();
    const answers = await Promise.all(
      Array.from({ length: PARALLEL_LARGE }, () =>
        exchange(
          relay,
          'POST',
          '/relay/media',
          { ...auth(), 'content-type': 'application/octet-stream' },
          large,
        ),
      ),
    );
    const elapsedMs = performance.now() - started;
    clearInterval(sampler);
    peak = Math.max(peak, rssBytes(process.pid));
    const growth = peak - before;
    const ok = answers.every((a) => a.status === 200) && growth <= RSS_TARGET_BYTES;
    const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
    const memory: BenchResult = {
      module: MODULE,
      name: `RSS growth during ${PARALLEL_LARGE} parallel uploads of 25 MB (figure column = uploads per second)`,
      figure: {
        name: `peak growth ${mib(growth)} MiB, ${answers.filter((a) => a.status === 200).length}/${PARALLEL_LARGE} stored`,
        opsPerSec: (PARALLEL_LARGE * 1000) / elapsedMs,
        meanOpsPerSec: (PARALLEL_LARGE * 1000) / elapsedMs,
        spread: 0,
        ops: PARALLEL_LARGE,
        elapsedMs,
      },
      baseline: {
        name: `target: at most ${mib(RSS_TARGET_BYTES)} MiB`,
        opsPerSec: 0,
        meanOpsPerSec: 0,
        spread: 0,
        ops: 0,
        elapsedMs: 0,
      },
      ratio: RSS_TARGET_BYTES / Math.max(1, growth),
      ratioIqr: [0, 0],
      target: 1,
      status: ok ? 'PASS' : 'BELOW',
      note: `ratio = ${mib(RSS_TARGET_BYTES)} MiB / growth (>= 1 passes); RSS of this one process (client and connector), sampled every 20 ms`,
    };
    memory.ratioIqr = [memory.ratio, memory.ratio];
    console.log(
      `  media: ${PARALLEL_LARGE} × 25 MB uploads, peak RSS growth ${mib(growth)} MiB in ${(elapsedMs / 1000).toFixed(1)} s`,
    );
    const results = [
      await compare({
        module: MODULE,
        name: `upload ${FILE_BYTES / 1024 / 1024} MB through /relay/media`,
        subject: upload,
        baseline: bareUpload,
        target: RATIO_TARGET,
        options: OPTIONS,
      }),
      await compare({
        module: MODULE,
        name: `download ${FILE_BYTES / 1024 / 1024} MB from /relay/media`,
        subject: download,
        baseline: bareDownload,
        target: RATIO_TARGET,
        options: OPTIONS,
      }),
    ];

    return [...results, memory];
  } finally {
    await new Promise<void>((resolve) => bare.server.close(() => resolve()));
    await connector.stop();
    dir.remove();
  }
}

export const mediaBench: BenchModule = {
  name: MODULE,
  description: 'media plane: 5 MB upload/download vs bare node:http; RSS during 20 × 25 MB uploads',
  run,
};
