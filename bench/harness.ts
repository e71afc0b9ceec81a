import { cpus, freemem, loadavg, platform, release, totalmem } from 'node:os';

/**
 * A small benchmark harness: warm a workload up, run it for a bounded time (and iteration count),
 * and report operations per second, optionally with per-operation latency percentiles for async
 * workloads. A figure is always measured next to a baseline in the same run, in interleaved
 * slices, so drift (CPU frequency, a noisy neighbour, GC) hits both sides alike.
 */

// ---------------------------------------------------------------------------------------------
// Machine information

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  node: string;
  v8: string;
  platform: string;
  arch: string;
  osRelease: string;
  totalMemoryBytes: number;
  freeMemoryBytes: number;
  /** 1, 5 and 15 minute load averages when the run started: other work on the machine skews figures. */
  loadAverage: number[];
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cpus: list.length,
    cpuModel: list[0]?.model.trim() || 'unknown',
    node: process.version,
    v8: process.versions.v8,
    platform: platform(),
    arch: process.arch,
    osRelease: release(),
    totalMemoryBytes: totalmem(),
    freeMemoryBytes: freemem(),
    loadAverage: loadavg().map((l) => Number(l.toFixed(2))),
  };
}

/** One line, e.g. `linux x64, 2 × Intel(R) Xeon(R) …, 7.8 GiB RAM, node v20.20.2`. */
export function machineLine(info: MachineInfo): string {
  const gib = (info.totalMemoryBytes / 1024 ** 3).toFixed(1);
  return `${info.platform} ${info.arch}, ${info.cpus} × ${info.cpuModel}, ${gib} GiB RAM, node ${info.node}`;
}

// ---------------------------------------------------------------------------------------------
// Workloads

/** A synchronous operation, called in calibrated batches (timer overhead stays out of the figure). */
export interface SyncWorkload {
  kind: 'sync';
  name: string;
  fn: () => unknown;
}

/** An async operation, awaited one at a time per worker; each call's latency is recorded. */
export interface AsyncWorkload {
  kind: 'async';
  name: string;
  fn: () => Promise<unknown>;
  /** Operations in flight at once (default 1). */
  concurrency?: number;
}

export type Workload = SyncWorkload | AsyncWorkload;

export function syncWorkload(name: string, fn: () => unknown): SyncWorkload {
  return { kind: 'sync', name, fn };
}

export function asyncWorkload(name: string, fn: () => Promise<unknown>, concurrency = 1): AsyncWorkload {
  return { kind: 'async', name, fn, concurrency };
}

export interface RunOptions {
  /** Warm-up time per workload before anything is recorded (default 300 ms). */
  warmupMs?: number;
  /** Measured time per workload, split over `slices` (default 1500 ms). */
  durationMs?: number;
  /** Number of interleaved slices (default 20). The figure is the median slice rate. */
  slices?: number;
  /** Hard cap on measured operations per workload (default unlimited). */
  maxOps?: number;
}

const DEFAULTS: Required<RunOptions> = {
  warmupMs: 300,
  durationMs: 1500,
  slices: 20,
  maxOps: Number.POSITIVE_INFINITY,
};

export interface Measurement {
  name: string;
  /** Median of the per-slice rates, operations per second. */
  opsPerSec: number;
  /** Total operations / total measured time, operations per second. */
  meanOpsPerSec: number;
  /** Relative spread of the slice rates: (max - min) / median. */
  spread: number;
  ops: number;
  elapsedMs: number;
  /** Async workloads only: latency percentiles in microseconds. */
  p50Us?: number;
  p99Us?: number;
}

/** Keeps results observable so the JIT cannot drop the measured work. */
let sink = 0;
function consume(value: unknown): void {
  if (value === undefined || value === null || value === false) sink ^= 1;
  else if (typeof value === 'object' && 'length' in value) sink ^= (value as { length: number }).length;
  else sink ^= 2;
}
/** Exposed so a caller (and the optimiser) can see the sink is live. */
export function sinkValue(): number {
  return sink;
}

/** Per slice; past this, percentiles come from the first samples (bounded memory for fast async ops). */
const MAX_LATENCY_SAMPLES = 200_000;

const now = (): bigint => process.hrtime.bigint();
const nsToMs = (ns: bigint): number => Number(ns) / 1e6;

interface SliceStats {
  ops: number;
  ns: bigint;
  latenciesNs: number[];
}

class Runner {
  private batch = 1;
  readonly slices: { ops: number; ns: bigint }[] = [];
  readonly latenciesNs: number[] = [];
  private totalOps = 0;

  constructor(
    readonly workload: Workload,
    private readonly maxOps: number,
  ) {}

  get done(): boolean {
    return this.totalOps >= this.maxOps;
  }

  /** Run for roughly `ms`, without recording (warm-up); also calibrates the sync batch size. */
  async warmup(ms: number): Promise<void> {
    await this.run(ms, Number.POSITIVE_INFINITY, false);
  }

  async slice(ms: number): Promise<void> {
    const stats = await this.run(ms, this.maxOps - this.totalOps, true);
    this.totalOps += stats.ops;
    this.slices.push({ ops: stats.ops, ns: stats.ns });
    for (const l of stats.latenciesNs) this.latenciesNs.push(l);
  }

  private async run(ms: number, maxOps: number, record: boolean): Promise<SliceStats> {
    return this.workload.kind === 'sync'
      ? this.runSync(this.workload, ms, maxOps)
      : this.runAsync(this.workload, ms, maxOps, record);
  }

  private runSync(w: SyncWorkload, ms: number, maxOps: number): SliceStats {
    const budget = BigInt(Math.round(ms * 1e6));
    const fn = w.fn;
    const start = now();
    let ops = 0;
    let elapsed = 0n;
    while (elapsed < budget && ops < maxOps) {
      const n = Math.max(1, Math.min(this.batch, maxOps - ops));
      const t0 = now();
      for (let i = 0; i < n; i++) consume(fn());
      const t1 = now();
      ops += n;
      elapsed = t1 - start;
      // Aim for ~1 ms batches so hrtime costs are negligible next to the work.
      const batchNs = Number(t1 - t0);
      if (batchNs < 500_000) this.batch = Math.min(this.batch * 2, 1 << 20);
      else if (batchNs > 4_000_000 && this.batch > 1) this.batch = Math.max(1, this.batch >> 1);
    }
    return { ops, ns: elapsed, latenciesNs: [] };
  }

  private async runAsync(w: AsyncWorkload, ms: number, maxOps: number, record: boolean): Promise<SliceStats> {
    const budget = BigInt(Math.round(ms * 1e6));
    const fn = w.fn;
    const latenciesNs: number[] = [];
    const start = now();
    let ops = 0;
    let started = 0;
    const worker = async (): Promise<void> => {
      while (now() - start < budget && started < maxOps) {
        started++;
        const t0 = now();
        consume(await fn());
        const t1 = now();
        ops++;
        if (record && latenciesNs.length < MAX_LATENCY_SAMPLES) latenciesNs.push(Number(t1 - t0));
      }
    };
    const workers = Array.from({ length: Math.max(1, w.concurrency ?? 1) }, worker);
    await Promise.all(workers);
    return { ops, ns: now() - start, latenciesNs };
  }

  /** Operations per second of each slice, in order (0 for an empty slice). */
  sliceRates(): number[] {
    return this.slices.map((s) => (s.ns > 0n ? s.ops / (Number(s.ns) / 1e9) : 0));
  }

  measurement(): Measurement {
    const rates = this.sliceRates().filter((r) => r > 0);
    const ops = this.slices.reduce((a, s) => a + s.ops, 0);
    const ns = this.slices.reduce((a, s) => a + s.ns, 0n);
    const median = quantile(rates, 0.5);
    const m: Measurement = {
      name: this.workload.name,
      opsPerSec: median,
      meanOpsPerSec: ns > 0n ? ops / (Number(ns) / 1e9) : 0,
      spread: median > 0 ? (Math.max(...rates) - Math.min(...rates)) / median : 0,
      ops,
      elapsedMs: nsToMs(ns),
    };
    if (this.workload.kind === 'async' && this.latenciesNs.length > 0) {
      m.p50Us = quantile(this.latenciesNs, 0.5) / 1e3;
      m.p99Us = quantile(this.latenciesNs, 0.99) / 1e3;
    }
    return m;
  }
}

/** Nearest-rank quantile of an unsorted list (0 for an empty list). */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

/**
 * Measure several workloads in interleaved slices (A B C, then C B A, …) after warming each up.
 * Each workload gets `durationMs` of measured time in total.
 */
export async function measureInterleaved(
  workloads: readonly Workload[],
  options: RunOptions = {},
): Promise<Measurement[]> {
  return (await runInterleaved(workloads, options)).map((r) => r.measurement());
}

async function runInterleaved(workloads: readonly Workload[], options: RunOptions): Promise<Runner[]> {
  const o = { ...DEFAULTS, ...options };
  const runners = workloads.map((w) => new Runner(w, o.maxOps));
  for (const r of runners) await r.warmup(o.warmupMs);
  const sliceMs = o.durationMs / Math.max(1, o.slices);
  for (let s = 0; s < o.slices; s++) {
    const order = s % 2 === 0 ? runners : [...runners].reverse();
    for (const r of order) if (!r.done) await r.slice(sliceMs);
  }
  return runners;
}

/** Measure one workload on its own. */
export async function measure(workload: Workload, options: RunOptions = {}): Promise<Measurement> {
  const [m] = await measureInterleaved([workload], options);
  return m as Measurement;
}

// ---------------------------------------------------------------------------------------------
// Results

export type Status = 'PASS' | 'BELOW' | 'INFO';

export interface BenchResult {
  /** Module the result belongs to, e.g. `auth`. */
  module: string;
  name: string;
  figure: Measurement;
  baseline: Measurement;
  /**
   * Median over slice pairs of figure rate / baseline rate, each pair measured back to back, so
   * bursts of other load on the machine cancel out.
   */
  ratio: number;
  /** Interquartile range of the per-pair ratios: how much to trust `ratio` on a noisy machine. */
  ratioIqr: [number, number];
  /** Minimum acceptable ratio, when the figure has one. */
  target?: number;
  status: Status;
  note?: string;
}

export interface CompareSpec {
  module: string;
  name: string;
  subject: Workload;
  baseline: Workload;
  target?: number;
  note?: string;
  options?: RunOptions;
}

/** Measure `subject` and `baseline` interleaved in the same run and judge the ratio. */
export async function compare(spec: CompareSpec): Promise<BenchResult> {
  const [a, b] = (await runInterleaved([spec.subject, spec.baseline], spec.options ?? {})) as [
    Runner,
    Runner,
  ];
  const baseRates = b.sliceRates();
  const pairRatios = a
    .sliceRates()
    .map((rate, i) => rate / (baseRates[i] ?? 0))
    .filter((r) => Number.isFinite(r) && r > 0);
  const ratio = quantile(pairRatios, 0.5);
  const ratioIqr: [number, number] = [quantile(pairRatios, 0.25), quantile(pairRatios, 0.75)];
  const status: Status = spec.target === undefined ? 'INFO' : ratio >= spec.target ? 'PASS' : 'BELOW';
  const result: BenchResult = {
    module: spec.module,
    name: spec.name,
    figure: a.measurement(),
    baseline: b.measurement(),
    ratio,
    ratioIqr,
    status,
  };
  if (spec.target !== undefined) result.target = spec.target;
  if (spec.note !== undefined) result.note = spec.note;
  return result;
}

export function formatRate(opsPerSec: number): string {
  if (opsPerSec >= 1e6) return `${(opsPerSec / 1e6).toFixed(2)} M/s`;
  if (opsPerSec >= 1e3) return `${(opsPerSec / 1e3).toFixed(1)} k/s`;
  return `${opsPerSec.toFixed(1)} /s`;
}

function formatLatency(m: Measurement): string {
  if (m.p50Us === undefined || m.p99Us === undefined) return '';
  return ` (p50 ${m.p50Us.toFixed(1)} µs, p99 ${m.p99Us.toFixed(1)} µs)`;
}

const COLUMNS = ['benchmark', 'figure', 'baseline', 'baseline figure', 'ratio', 'target', 'status'] as const;

function cells(r: BenchResult): string[] {
  return [
    `${r.module}: ${r.name}`,
    formatRate(r.figure.opsPerSec) + formatLatency(r.figure),
    r.baseline.name,
    formatRate(r.baseline.opsPerSec) + formatLatency(r.baseline),
    `${r.ratio.toFixed(3)} (IQR ${r.ratioIqr[0].toFixed(2)}–${r.ratioIqr[1].toFixed(2)})`,
    r.target === undefined ? '-' : `>= ${r.target}`,
    r.status,
  ];
}

/** The results as a Markdown-compatible table (readable on a terminal too). */
export function formatTable(results: readonly BenchResult[]): string {
  const rows = [COLUMNS.slice(), ...results.map(cells)];
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  const line = (row: readonly string[]): string =>
    `| ${row.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const rule = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  return [line(rows[0] as string[]), rule, ...rows.slice(1).map(line)].join('\n');
}

/** One row, for printing as soon as a result is in. */
export function formatRow(r: BenchResult): string {
  const [name, figure, baseName, baseFigure, ratio, target, status] = cells(r);
  return `${name}: ${figure} vs ${baseName} ${baseFigure} → ratio ${ratio}, target ${target}, ${status}`;
}

/**
 * JSON as Biome formats it (so a written results file passes `biome check`): two-space indent,
 * arrays of primitives on one line, and non-integer numbers rounded to four decimals.
 */
/** Biome's line width (biome.json): an array of scalars stays on one line only within it. */
const JSON_LINE_WIDTH = 110;

export function toJson(value: unknown, indent = '', room = JSON_LINE_WIDTH - indent.length): string {
  if (typeof value === 'number')
    return JSON.stringify(Number.isInteger(value) ? value : Number(value.toFixed(4)));
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    if (value.every((v) => v === null || typeof v !== 'object')) {
      const inline = `[${value.map((v) => toJson(v, inner)).join(', ')}]`;
      if (inline.length <= room) return inline;
    }
    return `[\n${value.map((v) => inner + toJson(v, inner)).join(',\n')}\n${indent}]`;
  }
  const entries = Object.entries(value).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return '{}';
  const body = entries
    .map(([k, v]) => {
      const prefix = `${inner}${JSON.stringify(k)}: `;
      // The rest of the line: what the key leaves, less a trailing comma.
      return `${prefix}${toJson(v, inner, JSON_LINE_WIDTH - prefix.length - 1)}`;
    })
    .join(',\n');
  return `{\n${body}\n${indent}}`;
}

// ---------------------------------------------------------------------------------------------
// Modules

export interface BenchModule {
  /** Short name used by `--only`. */
  name: string;
  description: string;
  run(): Promise<BenchResult[]>;
}
