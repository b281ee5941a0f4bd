/**
 * The paths being compared, each timed start to finish with the write probe
 * on the target database:
 * - A: the old proof of concept's data path, flag for flag;
 * - B: this project's `copy` through the real bundled runner;
 * - C: pgcopydb (`pgcopydb clone`), when installed, into a fresh database;
 * - D: plain `pg_dump -Fd -j N -Z0` + `pg_restore -j N` + `vacuumdb -Z -j N`
 *   into a fresh database; its dump and restore phases are also the lower bound.
 */
import { accessSync, constants, rmSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BENCH_DB, PROBE_TABLE } from './dataset';
import { childrenCpuMs, runMeasured, serverCpuMs, ServerLogTap, WriteProbe, type LoggedStatement, type ProbeResult, type ProcessRun } from './measure';
import { LocalCluster, pgBin, pgBinDir, quoteIdent } from '../local/cluster';

export interface CpuSeconds {
  readonly source: number;
  readonly target: number;
  /** Client processes started by the path (pg_dump, pg_restore, the runner, pgcopydb, ...). */
  readonly clients: number;
}

export interface PathRun {
  readonly wallMs: number;
  readonly peakRssBytes: number;
  /** Non-zero exit codes, by command; empty when every command exited 0. */
  readonly failures: ReadonlyArray<{ command: string; exitCode: number; stderrTail: string }>;
  /** What the application saw: the write probe on the target database. */
  readonly probe: ProbeResult;
  /** The unavailable window as the issue defines it (A: the whole restore; B: the runner's reported swap window). */
  readonly definedUnavailableMs?: number;
  /** Named phases in milliseconds (B: the runner's steps; C: pgcopydb's own summary; D: its commands). */
  readonly phases: Readonly<Record<string, number>>;
  /** CPU time spent during the path, in seconds. */
  readonly cpu: CpuSeconds;
  /** Statements of 100 ms or more, from both servers' logs, started at this many ms after the path started. */
  readonly statements: ReadonlyArray<LoggedStatement & { readonly atMs: number }>;
  /** B: what the runner's own verification covered, from its log. */
  readonly runnerVerified?: RunnerVerified;
  /** The database on the target that holds the path's result. */
  readonly database: string;
  /** The main command's output (B: the runner's log; C: pgcopydb's), for the record. */
  readonly log?: string;
}

export interface Endpoints {
  readonly source: LocalCluster;
  readonly target: LocalCluster;
  readonly workDir: string;
}

/** A: `pg_dump -Fc` to a file, then `pg_restore -c -d <db> < file` into the live database. */
export async function runPathA(e: Endpoints): Promise<PathRun> {
  const file = join(e.workDir, 'poc.dump');
  rmSync(file, { force: true });
  return withProbe(e, BENCH_DB, async () => {
    const dump = await runMeasured(pgBin('pg_dump'), ['-Fc', '-f', file, '-d', e.source.uri(BENCH_DB)]);
    const restore = await runMeasured(pgBin('pg_restore'), ['-c', '-d', e.target.uri(BENCH_DB)], { stdinFile: file });
    rmSync(file, { force: true });
    return {
      runs: [dump, restore],
      phases: { dump: dump.wallMs, restore: restore.wallMs },
      // The live database is half-restored from the first DROP to the last index.
      definedUnavailableMs: restore.wallMs,
    };
  });
}

/** B: `node assets/runner/runner.js copy ... --strategy swap`, the stable data-path contract. */
export async function runPathB(
  e: Endpoints, runnerJs: string, jobs: number, onLogLine?: (line: string) => void, extraArgs: readonly string[] = [],
): Promise<PathRun> {
  return withProbe(e, BENCH_DB, async () => {
    const copy = await runMeasured(process.execPath, [runnerJs, 'copy',
      '--source', e.source.uri('postgres'),
      '--target', e.target.uri('postgres'),
      '--database', BENCH_DB,
      '--strategy', 'swap',
      '--jobs', String(jobs), ...extraArgs], { onStdoutLine: onLogLine });
    return {
      runs: [copy],
      phases: runnerStepDurations(copy.stdout),
      definedUnavailableMs: runnerUnavailableMs(copy.stdout),
      runnerVerified: runnerVerified(copy.stdout),
      log: copy.stdout + copy.stderr,
    };
  });
}

/** Where `pgcopydb` is on `path` (a PATH-like list), or undefined when it is not installed. */
export function findPgcopydb(path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, 'pgcopydb');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * C: `pgcopydb clone --table-jobs N --index-jobs N` into a fresh database
 * `database`, created inside the timed section (as B creates its own).
 * pgcopydb runs the pg_dump/pg_restore of the PostgreSQL binaries the bench
 * uses (they come first on its PATH).
 */
export async function runPathC(e: Endpoints, pgcopydb: string, jobs: number, database: string): Promise<PathRun> {
  const dir = join(e.workDir, 'pgcopydb');
  rmSync(dir, { recursive: true, force: true });
  const binDir = pgBinDir();
  const env = binDir ? { PATH: `${binDir}${delimiter}${process.env.PATH ?? ''}` } : {};
  try {
    return await withProbe(e, database, async () => {
      const create = await createDatabase(e.target, database);
      if (create.exitCode !== 0) return { runs: [create], phases: {} };
      const clone = await runMeasured(pgcopydb, ['clone',
        '--source', e.source.uri(BENCH_DB),
        '--target', e.target.uri(database),
        '--table-jobs', String(jobs),
        '--index-jobs', String(jobs),
        '--dir', dir], { env });
      const log = clone.stdout + clone.stderr;
      return { runs: [create, clone], phases: { 'create database': create.wallMs, ...pgcopydbSteps(log) }, log };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * D: the plain baseline, with B's dump flags, into a fresh database
 * `database`: `pg_dump -Fd -j N -Z0 --no-sync`, `pg_restore -j N
 * --exit-on-error`, `vacuumdb -Z -j N`. Its dump and restore phases are the
 * lower bound (the slowest single phase).
 */
export async function runPathD(e: Endpoints, jobs: number, database: string): Promise<PathRun> {
  const dir = join(e.workDir, 'plain-dump');
  rmSync(dir, { recursive: true, force: true });
  try {
    return await withProbe(e, database, async () => {
      const runs: ProcessRun[] = [];
      const phases: Record<string, number> = {};
      const steps: Array<[string, () => Promise<ProcessRun>]> = [
        ['create database', () => createDatabase(e.target, database)],
        ['dump', () => runMeasured(pgBin('pg_dump'), ['-Fd', '-j', String(jobs), '-Z0', '--no-sync', '-f', dir, '-d', e.source.uri(BENCH_DB)])],
        ['restore', () => runMeasured(pgBin('pg_restore'), ['-j', String(jobs), '--exit-on-error', '-d', e.target.uri(database), dir])],
        ['analyze', () => runMeasured(pgBin('vacuumdb'), ['-Z', '-q', '-j', String(jobs), '-d', e.target.uri(database)])],
      ];
      for (const [name, step] of steps) {
        const run = await step();
        runs.push(run);
        phases[name] = run.wallMs;
        if (run.exitCode !== 0) break;
      }
      return { runs, phases };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function createDatabase(target: LocalCluster, database: string): Promise<ProcessRun> {
  return runMeasured(pgBin('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', target.uri('postgres'), '-c', `CREATE DATABASE ${quoteIdent(database)}`]);
}

interface Timed {
  readonly runs: readonly ProcessRun[];
  readonly phases: Record<string, number>;
  readonly definedUnavailableMs?: number;
  readonly runnerVerified?: RunnerVerified;
  readonly log?: string;
}

/**
 * Runs `body` with the write probe on the target's `bench` database, start to
 * finish, and measures CPU time and the servers' logged statements around it.
 */
async function withProbe(e: Endpoints, database: string, body: () => Promise<Timed>): Promise<PathRun> {
  const logs = [new ServerLogTap('source', join(e.source.baseDir, 'server.log')), new ServerLogTap('target', join(e.target.baseDir, 'server.log'))];
  logs.forEach((l) => l.mark());
  const cpuBefore = { source: serverCpuMs(e.source.dataDir), target: serverCpuMs(e.target.dataDir), clients: childrenCpuMs() };
  const probe = new WriteProbe(e.target.uri(BENCH_DB), PROBE_TABLE);
  probe.start();
  const startedEpochMs = Date.now();
  const started = performance.now();
  let result;
  let probed: ProbeResult;
  try {
    result = await body();
  } finally {
    // Always stopped, so a failing path never leaves the loop running.
    probed = await probe.stop();
  }
  const wallMs = performance.now() - started;
  const cpu = {
    source: (serverCpuMs(e.source.dataDir) - cpuBefore.source) / 1000,
    target: (serverCpuMs(e.target.dataDir) - cpuBefore.target) / 1000,
    clients: (childrenCpuMs() - cpuBefore.clients) / 1000,
  };
  const statements = logs.flatMap((l) => l.statements())
    // The probe's own inserts show up only when blocked; they are the window, not work.
    .filter((st) => st.application !== 'bench-write-probe')
    .map((st) => ({ ...st, atMs: st.startEpochMs - startedEpochMs }))
    .sort((x, y) => x.atMs - y.atMs);
  return {
    wallMs,
    peakRssBytes: Math.max(...result.runs.map((r) => r.peakRssBytes)),
    failures: result.runs.filter((r) => r.exitCode !== 0).map((r) => ({ command: r.command, exitCode: r.exitCode, stderrTail: tail(r.stderr) })),
    probe: probed,
    definedUnavailableMs: result.definedUnavailableMs,
    runnerVerified: result.runnerVerified,
    phases: result.phases,
    cpu,
    statements,
    database,
    log: result.log,
  };
}

function tail(text: string, lines = 8): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}

/**
 * The runner logs `<ts> < <step>: done in <duration>` for each step (see
 * buildspec/runner/log.ts); those become B's phase breakdown.
 */
export function runnerStepDurations(log: string): Record<string, number> {
  const phases: Record<string, number> = {};
  for (const match of log.matchAll(/^\S+ < (.+?): (?:done in|FAILED after) ([0-9.]+ (?:ms|s)|[0-9]+ min [0-9]+ s)/gm)) {
    // Names carry the run's stamp (`__pitr_20260101120000`); without it the same step lines up across runs.
    const name = match[1].replace(/__pitr_[0-9]+/g, '__pitr_<stamp>');
    phases[name] = (phases[name] ?? 0) + parseDuration(match[2]);
  }
  return phases;
}

/** The swap window the runner reports, if its log states one (`unavailable ... <duration>`). */
export function runnerUnavailableMs(log: string): number | undefined {
  const match = /unavailable[^\n]*?([0-9.]+ (?:ms|s)|[0-9]+ min [0-9]+ s)/i.exec(log);
  return match ? parseDuration(match[1]) : undefined;
}

export interface RunnerVerified {
  readonly tables: number;
  /** Tables whose content the runner checksummed; the others it only counted. */
  readonly checksummed: number;
}

/**
 * What the runner's verification covered, if its log says: `equal — N tables
 * (R rows): row counts + content checksums` (every table checksummed), or the
 * earlier `equal — N tables (M with content checksums)`.
 */
export function runnerVerified(log: string): RunnerVerified | undefined {
  const every = /equal — ([0-9]+) tables \([0-9]+ rows\): row counts \+ content checksums/.exec(log);
  if (every) return { tables: Number(every[1]), checksummed: Number(every[1]) };
  const some = /equal — ([0-9]+) tables \(([0-9]+) with content checksums\)/.exec(log);
  return some ? { tables: Number(some[1]), checksummed: Number(some[2]) } : undefined;
}

function parseDuration(text: string): number {
  const min = /^([0-9]+) min ([0-9]+) s$/.exec(text);
  if (min) return Number(min[1]) * 60_000 + Number(min[2]) * 1000;
  const [value, unit] = text.split(' ');
  return Number(value) * (unit === 'ms' ? 1 : 1000);
}

/**
 * pgcopydb's closing summary (`Step  Connection  Duration  Concurrency`) as
 * phases in milliseconds. Its durations read `123ms`, ` 1s234`, `12s`,
 * ` 1m05s` or ` 1h02m`, so above 10 s they are whole seconds.
 */
export function pgcopydbSteps(log: string): Record<string, number> {
  const steps: Record<string, number> = {};
  for (const line of log.split('\n')) {
    const m = /^\s*(\S.*?)\s{2,}(source|target|both)\s+(\S+)\s+\S.*$/.exec(line);
    if (!m) continue;
    const ms = pgcopydbDurationMs(m[3]);
    if (ms !== undefined) steps[`pgcopydb: ${m[1]}`] = ms;
  }
  return steps;
}

export function pgcopydbDurationMs(text: string): number | undefined {
  const t = text.trim();
  let m: RegExpExecArray | null;
  if ((m = /^([0-9]+)ms$/.exec(t))) return Number(m[1]);
  if ((m = /^([0-9]+)s([0-9]{3})$/.exec(t))) return Number(m[1]) * 1000 + Number(m[2]);
  if ((m = /^([0-9]+)s$/.exec(t))) return Number(m[1]) * 1000;
  if ((m = /^([0-9]+)m([0-9]{2})s$/.exec(t))) return (Number(m[1]) * 60 + Number(m[2])) * 1000;
  if ((m = /^([0-9]+)h([0-9]{2})m$/.exec(t))) return (Number(m[1]) * 60 + Number(m[2])) * 60_000;
  return undefined;
}
