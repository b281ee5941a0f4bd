/**
 * `npx projen bench`: the recovery data path (B, this project's `copy`)
 * against the old proof of concept (A), pgcopydb (C, when installed) and a
 * plain parallel dump and restore (D), on the same data in the same run.
 *
 * Progress goes to stderr; stdout carries the Markdown report and, as its
 * very last line,
 * `speedup A/B = X.XX, C/B = X.XX, unavailable window A = Y.YY s, B = Z.ZZ s`.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { benchChanges } from './changes';
import {
  BENCH_DB, buildDatasets, CLUSTER_SETTINGS, largestShare, resetTarget, sourceTables, startClusters, tableFingerprints, userObjects, type Dataset,
} from './dataset';
import { killLiveChildren } from './measure';
import { parseBenchOptions, UsageError, type BenchOptions } from './options';
import { findPgcopydb, runPathA, runPathB, runPathC, runPathD, type Endpoints, type PathRun } from './paths';
import { C_SKIPPED, correct, markdownTable, summarize, verdictLine, type CheckedPathRun, type Checks, type RunRecord } from './report';
import { LocalCluster, makeWorkDir, pgBin } from '../local/cluster';
import { usePgMajor } from '../local/pg-major';

const REPO = resolve(__dirname, '..');
const RUNNER_JS = join(REPO, 'assets', 'runner', 'runner.js');
/** Fresh databases C and D restore into, on the target (dropped before the next path). */
const PGCOPYDB_DB = 'bench_pgcopydb';
const PLAIN_DB = 'bench_plain';

const progress = (message: string): void => {
  process.stderr.write(`${new Date().toISOString()} bench: ${message}\n`);
};

/** Things to undo, newest first; run once, on success, failure or signal. */
class Cleanup {
  private readonly actions: Array<{ what: string; fn: () => Promise<void> | void }> = [];
  private running: Promise<void> | undefined;

  add(what: string, fn: () => Promise<void> | void): void {
    this.actions.unshift({ what, fn });
  }

  /** Every caller (the signal handler, the normal exit) waits for the same single pass. */
  run(): Promise<void> {
    this.running ??= (async () => {
      for (const { what, fn } of this.actions) {
        try {
          await fn();
        } catch (err) {
          process.stderr.write(`bench: cleanup of ${what} failed: ${(err as Error).message}\n`);
        }
      }
    })();
    return this.running;
  }
}

async function main(): Promise<number> {
  // `--changes`: the record of writes made after T against the copy (bench/changes.ts, its own flags).
  if (process.argv.includes('--changes')) {
    await benchChanges();
    return 0;
  }
  let options: BenchOptions;
  try {
    options = parseBenchOptions(process.argv.slice(2), cpus().length);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
  try {
    usePgMajor(options.pgMajor, '--pg');
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message} Nothing was started.\n`);
    return 2;
  }
  if (!existsSync(RUNNER_JS)) {
    process.stderr.write(`bench: the bundled runner ${RUNNER_JS} does not exist; run \`npx projen bundle\` first (\`npx projen bench\` does). Nothing was started.\n`);
    return 2;
  }

  const cleanup = new Cleanup();
  const onSignal = (signal: NodeJS.Signals): void => {
    progress(`${signal}: stopping child processes, removing clusters and temp files`);
    killLiveChildren();
    void cleanup.run().finally(() => process.exit(128 + (signal === 'SIGINT' ? 2 : 15)));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    return await benchmark(options, cleanup);
  } finally {
    await cleanup.run();
  }
}

async function benchmark(options: BenchOptions, cleanup: Cleanup): Promise<number> {
  const loadStart = loadavg();
  const pgcopydb = findPgcopydb();
  progress(`dataset ${options.dataset}, scale ${options.scaleName}, route ${options.route}, ${options.runs} run(s), -j ${options.jobs}; `
    + `${pgcopydb ? `C: ${pgcopydb}` : C_SKIPPED}; load average ${loadStart.map((l) => l.toFixed(2)).join(' ')}`);

  const workDir = await makeWorkDir('pitr-bench-');
  cleanup.add(`work dir ${workDir}`, () => rmSync(workDir, { recursive: true, force: true }));
  // Our own copy of the bundle: a `npx projen bundle` elsewhere (rm -rf assets) must not pull it away mid-run.
  const runnerJs = join(workDir, 'runner.js');
  copyFileSync(RUNNER_JS, runnerJs);
  const clusters = await startClusters(options.route);
  for (const c of clusters) {
    if (c.status === 'fulfilled') {
      const cluster = c.value;
      cleanup.add(`cluster on port ${cluster.port}`, () => (options.keep ? undefined : cluster.destroy()));
    }
  }
  const failed = clusters.find((c): c is PromiseRejectedResult => c.status === 'rejected');
  if (failed) throw failed.reason;
  const [source, target] = clusters.map((c) => (c as PromiseFulfilledResult<LocalCluster>).value);
  if (options.keep) {
    cleanup.add('--keep notice', () => {
      for (const [role, cluster] of [['source (point-in-time copy)', source], ['target (original)', target]] as const) {
        process.stderr.write(`bench: kept ${role}: ${cluster.uri(BENCH_DB)}\n  stop and remove: runuser -u postgres -- ${pgBin('pg_ctl')} -D ${cluster.dataDir} -m fast stop && rm -rf ${cluster.baseDir}\n`);
      }
    });
  }
  progress(`clusters up: source ${source.host}:${source.port}, target ${target.host}:${target.port}; generating the ${options.dataset} dataset`);

  const datasetStarted = Date.now();
  const dataset = await buildDatasets(source, target, options.dataset, options.size);
  const largest = dataset.tableBytes[0];
  progress(`dataset: ${(dataset.bytes / 2 ** 20).toFixed(0)} MiB in ${((Date.now() - datasetStarted) / 1000).toFixed(1)} s; `
    + `largest table ${largest?.table} ${((largest?.bytes ?? 0) / 2 ** 20).toFixed(0)} MiB, ${(100 * largestShare(dataset.tableBytes)).toFixed(0)}% of the tables' bytes`);

  const endpoints: Endpoints = { source, target, workDir };
  const tables = await sourceTables(source);
  const expected = { objects: await userObjects(source, BENCH_DB), fingerprints: await tableFingerprints(source, BENCH_DB, tables) };
  /** The bench's own equality check of a path's result database against the source. */
  const check = async (run: PathRun): Promise<CheckedPathRun> => {
    const objects = await userObjects(target, run.database).catch(() => new Set<string>());
    const fingerprints = await tableFingerprints(target, run.database, tables).catch(() => new Map());
    const checks: Checks = {
      staleObjects: [...objects].filter((o) => !expected.objects.has(o)).sort(),
      missingObjects: [...expected.objects].filter((o) => !objects.has(o)).sort(),
      rowMismatches: tables.filter((t) => fingerprints.get(t)?.rows !== expected.fingerprints.get(t)?.rows)
        .map((t) => `${t}: ${fingerprints.get(t)?.rows ?? 'missing'} vs ${expected.fingerprints.get(t)?.rows}`),
      contentMismatches: tables.filter((t) => fingerprints.get(t)?.hashSum !== expected.fingerprints.get(t)?.hashSum),
    };
    return { ...run, checks };
  };
  const report = (label: string, run: number, r: CheckedPathRun): void => {
    progress(`run ${run}/${options.runs}: ${label} took ${(r.wallMs / 1000).toFixed(2)} s, exit ${r.failures[0]?.exitCode ?? 0}, `
      + `CPU s source/target/clients ${r.cpu.source.toFixed(1)}/${r.cpu.target.toFixed(1)}/${r.cpu.clients.toFixed(1)}, probe gap ${(r.probe.longestGapMs / 1000).toFixed(2)} s`);
    if (label !== 'A' && !correct(r.checks)) {
      progress(`${label} left a result different from the source: stale ${JSON.stringify(r.checks.staleObjects)}, missing ${JSON.stringify(r.checks.missingObjects)}, `
        + `rows ${JSON.stringify(r.checks.rowMismatches)}, content ${JSON.stringify(r.checks.contentMismatches)}`);
    }
    for (const f of r.failures) progress(`${label} failed: ${f.command.replace(/postgresql:\/\/[^ ]+/g, '<uri>')} exited ${f.exitCode}:\n${f.stderrTail}`);
  };

  const runs: RunRecord[] = [];
  for (let run = 1; run <= options.runs; run++) {
    if (run > 1) await resetTarget(target);
    progress(`run ${run}/${options.runs}: A (pg_dump -Fc, pg_restore -c into the live database)`);
    const a = await check(await runPathA(endpoints));
    report('A', run, a);

    await resetTarget(target);
    const streamArgs = options.streamMinBytes !== undefined ? ['--stream-min-bytes', options.streamMinBytes] : [];
    progress(`run ${run}/${options.runs}: B (runner copy --strategy swap --jobs ${options.jobs}${streamArgs.length > 0 ? ` ${streamArgs.join(' ')}` : ''})`);
    const b = await check(await runPathB(endpoints, runnerJs, options.jobs, (line) => process.stderr.write(`    runner | ${line}\n`), streamArgs));
    report('B', run, b);

    let c: CheckedPathRun | undefined;
    if (pgcopydb) {
      await resetTarget(target);
      progress(`run ${run}/${options.runs}: C (pgcopydb clone --table-jobs ${options.jobs} --index-jobs ${options.jobs}, fresh database)`);
      c = await check(await runPathC(endpoints, pgcopydb, options.jobs, PGCOPYDB_DB));
      report('C', run, c);
    } else {
      progress(`run ${run}/${options.runs}: ${C_SKIPPED}`);
    }

    await resetTarget(target);
    progress(`run ${run}/${options.runs}: D (pg_dump -Fd -j ${options.jobs} -Z0, pg_restore -j ${options.jobs}, vacuumdb -Z, fresh database)`);
    const d = await check(await runPathD(endpoints, options.jobs, PLAIN_DB));
    report('D', run, d);
    runs.push({ run, a, b, c, d });
  }
  await resetTarget(target);
  // No path may have changed the source (the point-in-time copy) or left objects in it.
  const sourceAfter = await userObjects(source, BENCH_DB);
  const sourceChanged = [...sourceAfter].filter((o) => !expected.objects.has(o)).concat([...expected.objects].filter((o) => !sourceAfter.has(o)));
  if (sourceChanged.length > 0) progress(`WARNING: the source's objects changed during the bench: ${JSON.stringify(sourceChanged)}`);

  const summary = summarize(runs, dataset.bytes);
  const loadEnd = loadavg();
  const result = {
    date: new Date().toISOString(),
    command: `npx projen bench ${process.argv.slice(2).join(' ')}`.trim(),
    commit: git(['rev-parse', 'HEAD']),
    // The runner is bundled from the working tree: say when it differs from the commit.
    uncommittedRunnerFiles: git(['status', '--porcelain', '--', 'buildspec', 'src']).split('\n').filter(Boolean),
    machine: {
      nproc: cpus().length,
      memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
      cpuModel: cpus()[0]?.model ?? 'unknown',
      loadavgStart: loadStart,
      loadavgEnd: loadEnd,
      node: process.version,
    },
    postgres: {
      server: await source.sql('SELECT version()'),
      client: execFileSync(pgBin('pg_dump'), ['--version']).toString().trim(),
      pgcopydb: pgcopydb ? pgcopydbVersion(pgcopydb) : 'not installed',
    },
    settings: CLUSTER_SETTINGS,
    route: { name: options.route, source: `${source.host}:${source.port}`, target: `${target.host}:${target.port}` },
    dataset: describeDataset(dataset, tables),
    options,
    summary: { ...summary, ...Object.fromEntries((['a', 'b', 'c', 'd'] as const).map((k) => [k, summary[k] ? { ...summary[k], medianRun: undefined } : undefined])) },
    sourceChanged,
    runs: runs.map((r) => ({
      ...r,
      b: { ...r.b, log: undefined },
      bLogTail: r.b.log?.split('\n').slice(-40).join('\n'),
      c: r.c ? { ...r.c, log: undefined } : undefined,
      cLogTail: r.c?.log?.split('\n').slice(-40).join('\n'),
    })),
    verdict: verdictLine(summary, !pgcopydb),
  };
  const name = `${result.date.slice(0, 10)}-${options.dataset}-${options.route}-${options.scaleName}`;
  const file = options.save ? join(REPO, 'bench', 'results', `${name}.json`) : join(tmpdir(), `pitr-bench-${name}-${process.pid}.json`);
  mkdirSync(resolve(file, '..'), { recursive: true });
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);

  process.stdout.write(`\n## Recovery data path benchmark — ${result.date.slice(0, 10)}, ${options.dataset} dataset, ${options.route} route\n\n`);
  process.stdout.write(`Machine: ${result.machine.nproc} cores (${result.machine.cpuModel}), ${result.machine.memoryGiB} GiB, load average ${loadStart[0].toFixed(2)} at start, ${loadEnd[0].toFixed(2)} at end. ${result.postgres.server.split(' on ')[0]}; ${result.postgres.pgcopydb.split('\n')[0]}.\n`);
  process.stdout.write(`Route: ${options.route === 'two-hosts' ? `two hosts: the source listens on ${source.host} only, the target on ${target.host}` : `one host: both clusters on ${source.host}`}.\n`);
  process.stdout.write(`Dataset: ${datasetSentence(dataset)} Result JSON: ${file}\n\n`);
  process.stdout.write(`${markdownTable(summary, { runs: options.runs, jobs: options.jobs, largestTable: largest?.table ?? '' })}\n\n`);
  process.stdout.write(`${result.verdict}\n`);
  if (!summary.bSucceeded) {
    progress('B (the runner\'s copy) did not exit 0 with the target equal to the source in every run; see above. Exiting 1.');
    return 1;
  }
  if (summary.c && !summary.c.succeeded) {
    progress('C (pgcopydb) did not exit 0 with its result equal to the source in every run; see above. Exiting 1.');
    return 1;
  }
  if (!summary.d.succeeded) {
    progress('D (plain dump and restore) did not exit 0 with its result equal to the source in every run; see above. Exiting 1.');
    return 1;
  }
  return 0;
}

function pgcopydbVersion(bin: string): string {
  try {
    return execFileSync(bin, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim().split('\n')[0];
  } catch {
    return 'unknown version';
  }
}

function datasetSentence(dataset: Dataset): string {
  const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
  const largest = dataset.tableBytes[0];
  const share = `${(100 * largestShare(dataset.tableBytes)).toFixed(0)}%`;
  if (dataset.name === 'skewed') {
    return `skewed, ${mib(dataset.bytes)} (pg_database_size): \`${largest.table}\` with ${dataset.size.skewedRows} rows, primary key and 3 secondary indexes, `
      + `${mib(largest.bytes)} = ${share} of the tables' bytes, plus ${dataset.tableBytes.length - 1} small tables (${mib(dataset.tableBytes.slice(1).reduce((sum, t) => sum + t.bytes, 0))}).`;
  }
  return `default, ${mib(dataset.bytes)} (pg_database_size), pgbench -s ${dataset.size.pgbenchScale} plus 4 mixed-type tables of ${dataset.size.extraRows} rows `
    + `with 2 secondary indexes each; largest table \`${largest.table}\` ${mib(largest.bytes)} = ${share} of the tables' bytes.`;
}

function describeDataset(dataset: Dataset, tables: readonly string[]): Record<string, unknown> {
  return {
    name: dataset.name,
    bytes: dataset.bytes,
    mib: +(dataset.bytes / 2 ** 20).toFixed(1),
    size: dataset.size,
    largestTableShare: +largestShare(dataset.tableBytes).toFixed(4),
    tableBytes: dataset.tableBytes,
    tables,
  };
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: REPO }).toString().trim();
  } catch {
    return 'unknown';
  }
}

main().then((code) => process.exit(code), (err: Error) => {
  process.stderr.write(`bench: FAILED: ${err.message}\n`);
  process.exit(1);
});
