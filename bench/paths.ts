/**
 * The paths being compared. A is the old proof of concept's data path,
 * flag for flag; B is this project's `copy` through the real bundled runner;
 * the dump-only and restore-only phases give the lower bound.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BENCH_DB, PROBE_TABLE } from './dataset';
import { runMeasured, WriteProbe, type ProbeResult, type ProcessRun } from './measure';
import { LocalCluster, pgBin, quoteIdent } from '../buildspec/runner/local/cluster';

export interface PathRun {
  readonly wallMs: number;
  readonly peakRssBytes: number;
  /** Non-zero exit codes, by command; empty when every command exited 0. */
  readonly failures: ReadonlyArray<{ command: string; exitCode: number; stderrTail: string }>;
  /** What the application saw: the write probe on the target database. */
  readonly probe: ProbeResult;
  /** The unavailable window as the issue defines it (A: the whole restore; B: the runner's reported swap window). */
  readonly definedUnavailableMs?: number;
  readonly phases: Readonly<Record<string, number>>;
  /** The runner's log, for B. */
  readonly log?: string;
}

export interface Endpoints {
  readonly source: LocalCluster;
  readonly target: LocalCluster;
  readonly workDir: string;
}

/** A: `pg_dump -Fc` to a file, then `pg_restore -c -d <db> < file` into the live database. */
export async function runPathA({ source, target, workDir }: Endpoints): Promise<PathRun> {
  const file = join(workDir, 'poc.dump');
  rmSync(file, { force: true });
  return withProbe(target, async () => {
    const dump = await runMeasured(pgBin('pg_dump'), ['-Fc', '-f', file, '-d', source.uri(BENCH_DB)]);
    const restore = await runMeasured(pgBin('pg_restore'), ['-c', '-d', target.uri(BENCH_DB)], { stdinFile: file });
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
export async function runPathB({ source, target }: Endpoints, runnerJs: string, jobs: number, onLogLine?: (line: string) => void): Promise<PathRun> {
  return withProbe(target, async () => {
    const copy = await runMeasured(process.execPath, [runnerJs, 'copy',
      '--source', source.uri('postgres'),
      '--target', target.uri('postgres'),
      '--database', BENCH_DB,
      '--strategy', 'swap',
      '--jobs', String(jobs)], { onStdoutLine: onLogLine });
    return {
      runs: [copy],
      phases: runnerStepDurations(copy.stdout),
      definedUnavailableMs: runnerUnavailableMs(copy.stdout),
      log: copy.stdout + copy.stderr,
    };
  });
}

/** Dump only, with B's flags: `pg_dump -Fd -j N -Z0`. */
export async function runDumpOnly({ source }: Endpoints, dir: string, jobs: number): Promise<ProcessRun> {
  rmSync(dir, { recursive: true, force: true });
  return runMeasured(pgBin('pg_dump'), ['-Fd', '-j', String(jobs), '-Z0', '-f', dir, '-d', source.uri(BENCH_DB)]);
}

/** Restore only, with B's flags, into a fresh database: `pg_restore -j N --exit-on-error`. */
export async function runRestoreOnly({ target }: Endpoints, dir: string, jobs: number, database: string): Promise<ProcessRun> {
  await target.sql(`CREATE DATABASE ${quoteIdent(database)}`);
  return runMeasured(pgBin('pg_restore'), ['-j', String(jobs), '--exit-on-error', '-d', target.uri(database), dir]);
}

interface Timed {
  readonly runs: ProcessRun[];
  readonly phases: Record<string, number>;
  readonly definedUnavailableMs?: number;
  readonly log?: string;
}

/** Runs `body` with the write probe on the target database, start to finish. */
async function withProbe(target: LocalCluster, body: () => Promise<Timed>): Promise<PathRun> {
  const probe = new WriteProbe(target.uri(BENCH_DB), PROBE_TABLE);
  probe.start();
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
  return {
    wallMs,
    peakRssBytes: Math.max(...result.runs.map((r) => r.peakRssBytes)),
    failures: result.runs.filter((r) => r.exitCode !== 0).map((r) => ({ command: r.command, exitCode: r.exitCode, stderrTail: tail(r.stderr) })),
    probe: probed,
    definedUnavailableMs: result.definedUnavailableMs,
    phases: result.phases,
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

function parseDuration(text: string): number {
  const min = /^([0-9]+) min ([0-9]+) s$/.exec(text);
  if (min) return Number(min[1]) * 60_000 + Number(min[2]) * 1000;
  const [value, unit] = text.split(' ');
  return Number(value) * (unit === 'ms' ? 1 : 1000);
}
