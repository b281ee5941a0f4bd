/**
 * Command-line flags of `npx projen bench`. Every refusal names the flag, the
 * value given and what is accepted, and happens before any cluster starts.
 */
import { PG_MAJORS, type PgMajor } from '../local/pg-major';

/** Rows in each mixed-type table per pgbench scale unit. */
export const EXTRA_ROWS_PER_SCALE = 30_000;

/** Rows of the skewed dataset's largest table per scale unit (scale 20: 2.5M rows, about 1 GB in all). */
export const SKEWED_ROWS_PER_SCALE = 125_000;

export interface DatasetSize {
  /** Default dataset: `pgbench -i -s`. */
  readonly pgbenchScale: number;
  /** Default dataset: rows in each of the 4 mixed-type tables. */
  readonly extraRows: number;
  /** Skewed dataset: rows in its largest table (the ~20 small tables are sized from it). */
  readonly skewedRows: number;
}

/**
 * Named dataset sizes; a bare integer n means pgbench -s n and
 * n × EXTRA_ROWS_PER_SCALE rows per extra table (default dataset), or
 * n × SKEWED_ROWS_PER_SCALE rows in the largest table (skewed dataset).
 */
export const NAMED_SCALES: Readonly<Record<string, DatasetSize>> = {
  // About 20 MB: the whole bench runs end to end in seconds (.ci/run).
  smoke: { pgbenchScale: 1, extraRows: 5_000, skewedRows: 60_000 },
  // About 1 GB of pg_database_size, the size the issue's targets are set for.
  default: { pgbenchScale: 20, extraRows: 20 * EXTRA_ROWS_PER_SCALE, skewedRows: 20 * SKEWED_ROWS_PER_SCALE },
};

/**
 * `default`: pgbench plus 4 similar mixed-type tables. `skewed`: one table
 * holding at least 70% of the bytes (primary key and 3 secondary indexes,
 * one of them on two text columns) plus 20 small tables.
 */
export const DATASETS = ['default', 'skewed'] as const;
export type DatasetName = typeof DATASETS[number];

/**
 * `one-host`: both clusters on 127.0.0.1. `two-hosts`: the source (the
 * point-in-time copy) is reached on a second loopback address, 127.0.0.2, so
 * every client sees two different hosts, as in production (TLS and
 * streaming then cross what clients see as a network; the runner streams
 * large tables on both routes).
 */
export const ROUTES = ['one-host', 'two-hosts'] as const;
export type Route = typeof ROUTES[number];

export const MAX_SCALE = 1000;
export const MAX_RUNS = 50;
export const MAX_JOBS = 64;

export interface BenchOptions {
  /** As given (`smoke`, `default` or the number), used in file names. */
  readonly scaleName: string;
  readonly size: DatasetSize;
  readonly dataset: DatasetName;
  readonly route: Route;
  readonly runs: number;
  /** `-j` for B, C (table and index jobs) and D. */
  readonly jobs: number;
  /** Write the JSON result under bench/results/ instead of a temp path. */
  readonly save: boolean;
  /** Leave the clusters running afterwards and print how to reach and stop them. */
  readonly keep: boolean;
  /** B's `copy --stream-min-bytes` (a byte count or `never`); undefined: the runner's default for the route. */
  readonly streamMinBytes?: string;
  /** `--pg`: PostgreSQL major of both clusters and the client (local/pg-major.ts); undefined: PG_MAJOR, else 15. */
  readonly pgMajor?: PgMajor;
}

export class UsageError extends Error {}

const USAGE = `usage: npx projen bench [--dataset ${DATASETS.join('|')}] [--route ${ROUTES.join('|')}] [--scale smoke|default|<1..1000>] [--runs <1..50>] [--jobs <1..64>] [--stream-min-bytes <bytes>|never] [--pg ${PG_MAJORS.join('|')}] [--save] [--keep]`;

export function parseBenchOptions(argv: readonly string[], defaultJobs: number): BenchOptions {
  let scaleName = 'default';
  let dataset: DatasetName = 'default';
  let route: Route = 'one-host';
  let runs = 3;
  let jobs = Math.max(1, Math.min(defaultJobs, MAX_JOBS));
  let save = false;
  let keep = false;
  let streamMinBytes: string | undefined;
  let pgMajor: PgMajor | undefined;
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
      case '--dataset':
        dataset = choiceFlag('--dataset', value(), DATASETS);
        break;
      case '--route':
        route = choiceFlag('--route', value(), ROUTES);
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
      case '--stream-min-bytes': {
        const raw = value();
        if (raw !== 'never' && (!/^[0-9]+$/.test(raw) || !Number.isSafeInteger(Number(raw)))) {
          throw new UsageError(`bench: --stream-min-bytes ${JSON.stringify(raw)} is not accepted; use a whole number of bytes (0 streams every table) or never. Nothing was started.`);
        }
        streamMinBytes = raw;
        break;
      }
      case '--pg': {
        const raw = value();
        if (!(PG_MAJORS as readonly string[]).includes(raw)) throw new UsageError(`bench: --pg ${JSON.stringify(raw)} is not accepted; use ${PG_MAJORS.join(', ')}. Nothing was started.`);
        pgMajor = raw as PgMajor;
        break;
      }
      case '--help':
      case '-h':
        throw new UsageError(USAGE);
      default:
        throw new UsageError(`bench: unknown argument ${JSON.stringify(arg)}. ${USAGE}`);
    }
  }
  const size = NAMED_SCALES[scaleName] ?? sizeOf(integerFlag('--scale', scaleName, 1, MAX_SCALE, `${Object.keys(NAMED_SCALES).join(', ')}, or`));
  return {
    scaleName,
    size,
    dataset,
    route,
    runs,
    jobs,
    save,
    keep,
    ...(streamMinBytes !== undefined ? { streamMinBytes } : {}),
    ...(pgMajor !== undefined ? { pgMajor } : {}),
  };
}

function sizeOf(scale: number): DatasetSize {
  return { pgbenchScale: scale, extraRows: scale * EXTRA_ROWS_PER_SCALE, skewedRows: scale * SKEWED_ROWS_PER_SCALE };
}

function choiceFlag<T extends string>(flag: string, raw: string, accepted: readonly T[]): T {
  if (!(accepted as readonly string[]).includes(raw)) {
    throw new UsageError(`bench: ${flag} ${JSON.stringify(raw)} is not accepted; use ${accepted.join(' or ')}. Nothing was started.`);
  }
  return raw as T;
}

function integerFlag(flag: string, raw: string, min: number, max: number, alternatives = ''): number {
  if (!/^[0-9]+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new UsageError(`bench: ${flag} ${JSON.stringify(raw)} is not accepted; use ${alternatives ? `${alternatives} ` : ''}an integer from ${min} to ${max}. Nothing was started.`);
  }
  return Number(raw);
}
