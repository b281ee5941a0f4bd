/**
 * Command-line flags of `npx projen bench`. Every refusal names the flag, the
 * value given and what is accepted, and happens before any cluster starts.
 */

/** Rows in each mixed-type table per pgbench scale unit. */
export const EXTRA_ROWS_PER_SCALE = 30_000;

export interface DatasetSize {
  /** `pgbench -i -s`. */
  readonly pgbenchScale: number;
  /** Rows in each of the 4 mixed-type tables. */
  readonly extraRows: number;
}

/** Named dataset sizes; a bare integer n means pgbench -s n and n × EXTRA_ROWS_PER_SCALE rows per extra table. */
export const NAMED_SCALES: Readonly<Record<string, DatasetSize>> = {
  // About 20 MB: the whole bench runs end to end in seconds (.ci/run).
  smoke: { pgbenchScale: 1, extraRows: 5_000 },
  // About 1 GB of pg_database_size, the size the issue's targets are set for.
  default: { pgbenchScale: 20, extraRows: 20 * EXTRA_ROWS_PER_SCALE },
};

export const MAX_SCALE = 1000;
export const MAX_RUNS = 50;
export const MAX_JOBS = 64;

export interface BenchOptions {
  /** As given (`smoke`, `default` or the number), used in file names. */
  readonly scaleName: string;
  readonly size: DatasetSize;
  readonly runs: number;
  /** `-j` for B and the lower bound. */
  readonly jobs: number;
  /** Write the JSON result under bench/results/ instead of a temp path. */
  readonly save: boolean;
  /** Leave the clusters running afterwards and print how to reach and stop them. */
  readonly keep: boolean;
}

export class UsageError extends Error {}

const USAGE = 'usage: npx projen bench [--scale smoke|default|<1..1000>] [--runs <1..50>] [--jobs <1..64>] [--save] [--keep]';

export function parseBenchOptions(argv: readonly string[], defaultJobs: number): BenchOptions {
  let scaleName = 'default';
  let runs = 3;
  let jobs = Math.max(1, Math.min(defaultJobs, MAX_JOBS));
  let save = false;
  let keep = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`bench: ${flag} needs a value. ${USAGE}`);
      i++;
      return next;
    };
    switch (flag) {
      case '--scale':
        scaleName = value();
        break;
      case '--runs':
        runs = integerFlag('--runs', value(), 1, MAX_RUNS);
        break;
      case '--jobs':
        jobs = integerFlag('--jobs', value(), 1, MAX_JOBS);
        break;
      case '--save':
        save = true;
        break;
      case '--keep':
        keep = true;
        break;
      case '--help':
      case '-h':
        throw new UsageError(USAGE);
      default:
        throw new UsageError(`bench: unknown argument ${JSON.stringify(arg)}. ${USAGE}`);
    }
  }
  const size = NAMED_SCALES[scaleName] ?? sizeOf(integerFlag('--scale', scaleName, 1, MAX_SCALE, `${Object.keys(NAMED_SCALES).join(', ')}, or`));
  return { scaleName, size, runs, jobs, save, keep };
}

function sizeOf(scale: number): DatasetSize {
  return { pgbenchScale: scale, extraRows: scale * EXTRA_ROWS_PER_SCALE };
}

function integerFlag(flag: string, raw: string, min: number, max: number, alternatives = ''): number {
  if (!/^[0-9]+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new UsageError(`bench: ${flag} ${JSON.stringify(raw)} is not accepted; use ${alternatives ? `${alternatives} ` : ''}an integer from ${min} to ${max}. Nothing was started.`);
  }
  return Number(raw);
}
