/**
 * PostgreSQL 18's pg_dump can carry optimizer statistics (`--statistics`;
 * off by default in 18). Does restoring them beat the data path's ANALYZE
 * phase? On one cluster of PG_MAJOR (18 by default here), the bench's
 * default dataset is restored into a fresh database without statistics, then
 * either analyzed as the runner does (every table, `--jobs` at a time) or
 * given the source's statistics from a `pg_dump --statistics-only` archive
 * (pg_restore). Both are timed; the statistics each leaves (pg_stats rows,
 * pg_class.reltuples) are compared with the source's.
 *
 *   PG_MAJOR=18 npx ts-node --project tsconfig.dev.json bench/statistics.ts [--scale smoke|default|N] [--runs N] [--jobs N]
 */
import { cpus } from 'node:os';
import { join } from 'node:path';
import { BENCH_DB, CLUSTER_SETTINGS, generateDatabase, sourceTables } from './dataset';
import { runMeasured, type ProcessRun } from './measure';
import { parseBenchOptions } from './options';
import { LocalCluster, makeWorkDir, pgBin } from '../local/cluster';
import { pgMajor } from '../local/pg-major';

const FRESH = 'stats_fresh';

async function must(run: Promise<ProcessRun>): Promise<ProcessRun> {
  const result = await run;
  if (result.exitCode !== 0) throw new Error(`exit ${result.exitCode}: ${result.command}\n${result.stderr.trim()}`);
  return result;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const options = parseBenchOptions(process.argv.slice(2), cpus().length);
  if (Number(pgMajor()) < 18) throw new Error(`PG_MAJOR=${pgMajor()}: pg_dump --statistics exists from PostgreSQL 18; run with PG_MAJOR=18.`);
  const work = await makeWorkDir('pitr-stats-');
  const cluster = await LocalCluster.create({ settings: CLUSTER_SETTINGS, baseDir: join(work, 'pg') });
  try {
    await generateDatabase(cluster, 'default', options.size);
    await cluster.sql('ANALYZE', BENCH_DB);
    const tables = await sourceTables(cluster);
    const size = await cluster.sql(`SELECT pg_size_pretty(pg_database_size('${BENCH_DB}'))`);
    const dataDump = join(work, 'data.dump');
    const statsDump = join(work, 'stats.dump');
    await must(runMeasured(pgBin('pg_dump'), ['-Fd', '-j', String(options.jobs), '--no-statistics', '-f', dataDump, '-d', cluster.uri(BENCH_DB)]));
    const statsDumpRun = await must(runMeasured(pgBin('pg_dump'), ['-Fc', '--statistics-only', '-f', statsDump, '-d', cluster.uri(BENCH_DB)]));
    const facts = async (db: string): Promise<string> => cluster.sql(
      `SELECT (SELECT count(*) FROM pg_stats WHERE schemaname = 'public') || ' pg_stats rows, reltuples ' ||
              (SELECT string_agg(relname || '=' || reltuples::bigint, ' ' ORDER BY relname) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r')`, db);
    const fresh = async (): Promise<void> => {
      await cluster.sql(`DROP DATABASE IF EXISTS ${FRESH}`);
      await cluster.sql(`CREATE DATABASE ${FRESH}`);
      await must(runMeasured(pgBin('pg_restore'), ['-j', String(options.jobs), '--exit-on-error', '-d', cluster.uri(FRESH), dataDump]));
    };
    const analyzeMs: number[] = [];
    const restoreMs: number[] = [];
    let afterAnalyze = '';
    let afterRestore = '';
    let beforeEither = '';
    for (let run = 1; run <= options.runs; run++) {
      await fresh();
      beforeEither = await facts(FRESH);
      // As the runner's ANALYZE phase: every table, --jobs sessions at a time (vacuumdb -Z does the same).
      analyzeMs.push((await must(runMeasured(pgBin('vacuumdb'), ['-Z', '-j', String(options.jobs), '-d', cluster.uri(FRESH)]))).wallMs);
      afterAnalyze = await facts(FRESH);
      await fresh();
      restoreMs.push((await must(runMeasured(pgBin('pg_restore'), ['--exit-on-error', '-d', cluster.uri(FRESH), statsDump]))).wallMs);
      afterRestore = await facts(FRESH);
    }
    const source = await facts(BENCH_DB);
    const out = [
      `PostgreSQL ${await cluster.sql('SHOW server_version')}, dataset default scale ${options.scaleName} (${size}, ${tables.length} tables), ${options.runs} run(s), -j ${options.jobs}`,
      `pg_dump --statistics-only: ${Math.round(statsDumpRun.wallMs)} ms`,
      `ANALYZE phase (vacuumdb -Z -j ${options.jobs}): median ${Math.round(median(analyzeMs))} ms (${analyzeMs.map(Math.round).join(', ')})`,
      `statistics restore (pg_restore of the --statistics-only archive): median ${Math.round(median(restoreMs))} ms (${restoreMs.map(Math.round).join(', ')})`,
      `source:            ${source}`,
      `restored, no stats: ${beforeEither}`,
      `after ANALYZE:     ${afterAnalyze}`,
      `after stats restore: ${afterRestore}`,
    ];
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    await cluster.destroy();
  }
}

main().catch((err) => {
  process.stderr.write(`statistics: ${(err as Error).message}\n`);
  process.exit(1);
});
