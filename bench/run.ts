import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { authBench } from './auth.js';
import { connectionsBench } from './connections.js';
import { deliveryBench } from './delivery.js';
import { discordIngestBench } from './discord-ingest.js';
import { drainBench } from './drain.js';
import {
  type BenchModule,
  type BenchResult,
  formatRow,
  formatTable,
  machineInfo,
  machineLine,
  toJson,
} from './harness.js';
import { latencyBench } from './latency.js';
import { mediaBench } from './media.js';
import { probeBench } from './probe.js';
import { wsInboundBench } from './ws-inbound.js';
import { wsOpsBench } from './ws-ops.js';

/**
 * `npm run bench` entry. Add a benchmark by importing its module and listing it here, e.g.
 * delivery throughput, WebSocket round trip, connection scale.
 */
const MODULES: readonly BenchModule[] = [
  authBench,
  deliveryBench,
  wsOpsBench,
  wsInboundBench,
  mediaBench,
  connectionsBench,
  drainBench,
  probeBench,
  discordIngestBench,
  latencyBench,
];

// Compiled to dist/bench/run.js; results live beside the sources in bench/.
const DEFAULT_OUT = fileURLToPath(new URL('../../bench/results.json', import.meta.url));

const USAGE = `usage: node dist/bench/run.js [--only <name>] [--out <file>] [--list]
  --only <name>  run one benchmark module (${MODULES.map((m) => m.name).join(', ')})
  --out <file>   where to write the JSON results (default bench/results.json)
  --list         list the modules and exit`;

async function main(): Promise<number> {
  let args: { only?: string; out?: string; list?: boolean; help?: boolean };
  try {
    args = parseArgs({
      options: {
        only: { type: 'string' },
        out: { type: 'string' },
        list: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  if (args.list) {
    for (const m of MODULES) console.log(`${m.name}\t${m.description}`);
    return 0;
  }
  const selected = args.only === undefined ? MODULES : MODULES.filter((m) => m.name === args.only);
  if (selected.length === 0) {
    console.error(`unknown benchmark module "${args.only}"\n${USAGE}`);
    return 2;
  }

  const machine = machineInfo();
  console.log(`hermes-relay benchmarks — ${machineLine(machine)}\n`);
  const started = Date.now();
  const results: BenchResult[] = [];
  for (const m of selected) {
    console.log(`[${m.name}] ${m.description}`);
    for (const r of await m.run()) {
      console.log(`  ${formatRow(r)}`);
      results.push(r);
    }
  }
  const seconds = (Date.now() - started) / 1000;
  console.log(`\n${formatTable(results)}\n`);
  console.log(`machine: ${machineLine(machine)}; load average at start ${machine.loadAverage.join(' ')}`);
  console.log(`measured in ${seconds.toFixed(1)} s`);

  const out = args.out ?? DEFAULT_OUT;
  const report = {
    date: new Date().toISOString(),
    command: `node dist/bench/run.js${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}`,
    modules: selected.map((m) => m.name),
    durationSeconds: Number(seconds.toFixed(2)),
    machine,
    results,
  };
  writeFileSync(out, `${toJson(report)}\n`);
  console.log(`wrote ${out}`);

  const below = results.filter((r) => r.status === 'BELOW');
  if (below.length > 0)
    console.log(`${below.length} figure(s) BELOW target: ${below.map((r) => r.name).join('; ')}`);
  return 0;
}

process.exitCode = await main();
