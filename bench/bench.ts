/**
 * `npx projen bench`: the recovery data path (B, this project's `copy`)
 * against the old proof of concept (A), on the same data in the same run.
 *
 * Progress goes to stderr; stdout carries the Markdown table and, as its very
 * last line, `speedup A/B = X.XX, unavailable window A = Y.YY s, B = Z.ZZ s`.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { BENCH_DB, buildDatasets, CLUSTER_SETTINGS, resetTarget, rowCounts, sourceTables, startCluster, userObjects, type Dataset } from './dataset';
import { killLiveChildren } from './measure';
import { parseBenchOptions, UsageError, type BenchOptions } from './options';
import { runDumpOnly, runPathA, runPathB, runRestoreOnly, type Endpoints, type PathRun } from './paths';
import { correct, markdownTable, summarize, verdictLine, type CheckedPathRun, type Checks, type RunRecord } from './report';
import { LocalCluster, makeWorkDir, pgBin, quoteIdent } from '../buildspec/runner/local/cluster';

const REPO = resolve(__dirname, '..');
const RUNNER_JS = join(REPO, 'assets', 'runner', 'runner.js');
const LOWER_BOUND_DB = 'bench_lower_bound';

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
  progress(`scale ${options.scaleName} (pgbench -s ${options.size.pgbenchScale}, ${options.size.extraRows} rows per extra table), ${options.runs} run(s), -j ${options.jobs}; load average ${loadStart.map((l) => l.toFixed(2)).join(' ')}`);

  const workDir = await makeWorkDir('pitr-bench-');
  cleanup.add(`work dir ${workDir}`, () => rmSync(workDir, { recursive: true, force: true }));
  // Our own copy of the bundle: a `npx projen bundle` elsewhere (rm -rf assets) must not pull it away mid-run.
  const runnerJs = join(workDir, 'runner.js');
  copyFileSync(RUNNER_JS, runnerJs);
  const clusters = await Promise.allSettled([startCluster(), startCluster()]);
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
  progress(`clusters up: source 127.0.0.1:${source.port}, target 127.0.0.1:${target.port}; generating the dataset`);

  const datasetStarted = Date.now();
  const dataset = await buildDatasets(source, target, options.size.pgbenchScale, options.size.extraRows);
  progress(`dataset: ${(dataset.bytes / 2 ** 20).toFixed(0)} MiB in ${((Date.now() - datasetStarted) / 1000).toFixed(1)} s`);

  const endpoints: Endpoints = { source, target, workDir };
  const tables = await sourceTables(source);
  const expected = { objects: await userObjects(source, BENCH_DB), rows: await rowCounts(source, BENCH_DB, tables) };
  const check = async (run: PathRun): Promise<CheckedPathRun> => {
    const objects = await userObjects(target, BENCH_DB);
    const rows = await rowCounts(target, BENCH_DB, tables);
    const checks: Checks = {
      staleObjects: [...objects].filter((o) => !expected.objects.has(o)).sort(),
      missingObjects: [...expected.objects].filter((o) => !objects.has(o)).sort(),
      rowMismatches: tables.filter((t) => rows.get(t) !== expected.rows.get(t)).map((t) => `${t}: ${rows.get(t) ?? 'missing'} vs ${expected.rows.get(t)}`),
    };
    return { ...run, checks };
  };

  const runs: RunRecord[] = [];
  const lowerBoundDir = join(workDir, 'lower-bound');
  for (let run = 1; run <= options.runs; run++) {
    if (run > 1) await resetTarget(target);
    progress(`run ${run}/${options.runs}: A (pg_dump -Fc, pg_restore -c into the live database)`);
    const a = await check(await runPathA(endpoints));
    progress(`run ${run}/${options.runs}: A took ${(a.wallMs / 1000).toFixed(2)} s, exit ${a.failures[0]?.exitCode ?? 0}, ${a.checks.staleObjects.length} stale object(s)`);

    await resetTarget(target);
    progress(`run ${run}/${options.runs}: B (runner copy --strategy swap --jobs ${options.jobs})`);
    const b = await check(await runPathB(endpoints, runnerJs, options.jobs, (line) => process.stderr.write(`    runner | ${line}\n`)));
    progress(`run ${run}/${options.runs}: B took ${(b.wallMs / 1000).toFixed(2)} s, exit ${b.failures[0]?.exitCode ?? 0}, probe gap ${(b.probe.longestGapMs / 1000).toFixed(2)} s`);
    if (!correct(b.checks)) progress(`B left the target different from the source: stale ${JSON.stringify(b.checks.staleObjects)}, missing ${JSON.stringify(b.checks.missingObjects)}, rows ${JSON.stringify(b.checks.rowMismatches)}`);
    for (const f of b.failures) progress(`B failed: ${f.command.replace(/postgresql:\/\/[^ ]+/g, '<uri>')} exited ${f.exitCode}:\n${f.stderrTail}`);

    await resetTarget(target);
    progress(`run ${run}/${options.runs}: lower bound (dump only, restore only)`);
    const dump = await runDumpOnly(endpoints, lowerBoundDir, options.jobs);
    const restore = await runRestoreOnly(endpoints, lowerBoundDir, options.jobs, LOWER_BOUND_DB);
    for (const p of [dump, restore]) {
      if (p.exitCode !== 0) throw new Error(`lower-bound phase failed (exit ${p.exitCode}): ${p.command}\n${p.stderr.trim()}`);
    }
    rmSync(lowerBoundDir, { recursive: true, force: true });
    await target.sql(`DROP DATABASE ${quoteIdent(LOWER_BOUND_DB)}`);
    runs.push({
      run,
      a,
      b,
      dumpOnly: { wallMs: dump.wallMs, peakRssBytes: dump.peakRssBytes, exitCode: dump.exitCode },
      restoreOnly: { wallMs: restore.wallMs, peakRssBytes: restore.peakRssBytes, exitCode: restore.exitCode },
    });
  }

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
    },
    settings: CLUSTER_SETTINGS,
    dataset: describeDataset(dataset, tables),
    options,
    summary,
    runs: runs.map((r) => ({ ...r, b: { ...r.b, log: undefined }, bLogTail: r.b.log?.split('\n').slice(-40).join('\n') })),
    verdict: verdictLine(summary),
  };
  const file = options.save ? join(REPO, 'bench', 'results', `${result.date.slice(0, 10)}-${options.scaleName}.json`) : join(tmpdir(), `pitr-bench-${result.date.slice(0, 10)}-${options.scaleName}-${process.pid}.json`);
  mkdirSync(resolve(file, '..'), { recursive: true });
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);

  process.stdout.write(`\n## Recovery data path benchmark — ${result.date.slice(0, 10)}\n\n`);
  process.stdout.write(`Machine: ${result.machine.nproc} cores (${result.machine.cpuModel}), ${result.machine.memoryGiB} GiB, load average ${loadStart[0].toFixed(2)} at start, ${loadEnd[0].toFixed(2)} at end. ${result.postgres.server.split(' on ')[0]}.\n`);
  process.stdout.write(`Dataset: ${(dataset.bytes / 2 ** 20).toFixed(0)} MiB (pg_database_size), pgbench -s ${dataset.pgbenchScale} plus 4 mixed-type tables of ${dataset.extraRowsPerTable} rows with 2 secondary indexes each. Result JSON: ${file}\n\n`);
  process.stdout.write(`${markdownTable(summary, options.runs, options.jobs)}\n\n`);
  process.stdout.write(`${result.verdict}\n`);
  if (!summary.bSucceeded) {
    progress('B (the runner\'s copy) did not exit 0 with the target equal to the source in every run; see above. Exiting 1.');
    return 1;
  }
  return 0;
}

function describeDataset(dataset: Dataset, tables: readonly string[]): Record<string, unknown> {
  return {
    bytes: dataset.bytes,
    mib: +(dataset.bytes / 2 ** 20).toFixed(1),
    pgbenchScale: dataset.pgbenchScale,
    extraRowsPerTable: dataset.extraRowsPerTable,
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
