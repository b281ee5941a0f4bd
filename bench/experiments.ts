/**
 * Standalone data-path experiments, with plain pg_dump / pg_restore / psql,
 * for the ideas in the benchmark issue. Each variant is timed on the same
 * dataset as the bench; the numbers decide what the runner's data path adopts.
 *
 *   npx ts-node --project tsconfig.dev.json bench/experiments.ts [--scale ...] [--runs N] [--jobs N] [--save]
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BENCH_DB, CLUSTER_SETTINGS, generateDatabase, sourceTables, startCluster } from './dataset';
import { killLiveChildren, runMeasured, type ProcessRun } from './measure';
import { parseBenchOptions, UsageError } from './options';
import { spread } from './report';
import { LocalCluster, makeWorkDir, pgBin, quoteIdent } from '../local/cluster';

const FRESH_DB = 'experiment';

interface Variant {
  readonly name: string;
  readonly what: string;
  /** Runs the variant once; returns the timed milliseconds. Setup that is not timed happens inside, before the clock. */
  readonly run: () => Promise<number>;
}

const progress = (message: string): void => {
  process.stderr.write(`${new Date().toISOString()} experiments: ${message}\n`);
};

async function must(run: Promise<ProcessRun>): Promise<ProcessRun> {
  const result = await run;
  if (result.exitCode !== 0) throw new Error(`exit ${result.exitCode}: ${result.command.replace(/postgresql:\/\/\S+/g, '<uri>')}\n${result.stderr.trim()}`);
  return result;
}

async function main(): Promise<number> {
  let options;
  let only: string | undefined;
  try {
    const argv = process.argv.slice(2);
    // `--only <text>`: run just the variants whose name contains it (this script's own flag).
    const at = argv.indexOf('--only');
    if (at >= 0) only = argv.splice(at, 2)[1];
    options = parseBenchOptions(argv, cpus().length);
    if (options.route !== 'one-host') throw new UsageError(`experiments: --route ${options.route} is not supported here (the variants reach both clusters on 127.0.0.1); use npx projen bench for it.`);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const jobs = options.jobs;
  const workDir = await makeWorkDir('pitr-experiments-');
  const clusters: LocalCluster[] = [];
  const cleanup = async (): Promise<void> => {
    killLiveChildren();
    for (const c of clusters) await c.destroy().catch(() => undefined);
    rmSync(workDir, { recursive: true, force: true });
  };
  const onSignal = (): void => { void cleanup().finally(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const [source, target] = await Promise.all([startCluster(), startCluster()]);
    clusters.push(source, target);
    progress(`generating the ${options.dataset} dataset (scale ${options.scaleName}) on the source`);
    await generateDatabase(source, options.dataset, options.size);
    await source.sql('CHECKPOINT');
    const bytes = Number(await source.sql(`SELECT pg_database_size('${BENCH_DB}')`));
    const tables = await sourceTables(source);
    progress(`dataset ${(bytes / 2 ** 20).toFixed(0)} MiB; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);

    const src = source.uri(BENCH_DB);
    const dst = target.uri(FRESH_DB);
    const baseDump = join(workDir, 'base');
    await must(runMeasured(pgBin('pg_dump'), ['-Fd', '-j', String(jobs), '-Z0', '-f', baseDump, '-d', src]));
    const fresh = async (): Promise<void> => {
      await target.sql(`DROP DATABASE IF EXISTS ${quoteIdent(FRESH_DB)} WITH (FORCE)`);
      await target.sql(`CREATE DATABASE ${quoteIdent(FRESH_DB)}`);
      await target.sql('CHECKPOINT');
    };
    const dump = (args: string[]) => async (): Promise<number> => {
      const dir = join(workDir, 'dump-variant');
      rmSync(dir, { recursive: true, force: true });
      const r = await must(runMeasured(pgBin('pg_dump'), [...args, '-f', dir, '-d', src]));
      rmSync(dir, { recursive: true, force: true });
      return r.wallMs;
    };
    const restore = (j: number, pgOptions?: string) => async (): Promise<number> => {
      await fresh();
      const r = await must(runMeasured(pgBin('pg_restore'), ['-j', String(j), '--exit-on-error', '-d', dst, baseDump], { env: pgOptions ? { PGOPTIONS: pgOptions } : {} }));
      return r.wallMs;
    };
    const stream = (format: 'text' | 'binary', pgOptions?: string, overlapIndexes = false) => async (): Promise<number> => {
      await fresh();
      const pre = join(workDir, 'pre.sql');
      const post = join(workDir, 'post');
      rmSync(post, { recursive: true, force: true });
      const started = performance.now();
      // Schema first, then every table's rows piped source -> target (no file), N at a time, largest first, then indexes and constraints.
      await must(runMeasured(pgBin('pg_dump'), ['--section=pre-data', '-f', pre, '-d', src]));
      await must(runMeasured(pgBin('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', dst, '-f', pre]));
      const bySize = (await source.sql(`SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER BY pg_relation_size(c.oid) DESC`, BENCH_DB)).split('\n').filter(Boolean);
      const opts = format === 'binary' ? ' (FORMAT binary)' : '';
      // Like the runner: TRUNCATE in the loading transaction so COPY can FREEZE (no hint-bit rewrite later).
      const freeze = format === 'binary' ? ' (FORMAT binary, FREEZE)' : ' (FREEZE)';
      const env = pgOptions ? `PGOPTIONS='${pgOptions}' ` : '';
      const restoreEnv = { env: pgOptions ? { PGOPTIONS: pgOptions } : {} };
      // With overlapIndexes, each table's indexes and constraints are built as soon as its rows are in, while the other workers still stream.
      await must(runMeasured(pgBin('pg_dump'), ['-Fd', '--section=post-data', '-f', post, '-d', src]));
      const perTable = new Map<string, string[]>();
      const rest: string[] = [];
      if (overlapIndexes) {
        const indexTable = new Map((await source.sql(`SELECT c.relname || '|' || t.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public'`, BENCH_DB))
          .split('\n').filter(Boolean).map((l) => l.split('|') as [string, string]));
        for (const line of (await must(runMeasured(pgBin('pg_restore'), ['-l', post]))).stdout.split('\n')) {
          if (!/^[0-9]+;/.test(line)) continue;
          const tokens = line.split(' ');
          const table = tokens[3] === 'INDEX' ? indexTable.get(tokens[5]) : tokens[3] === 'CONSTRAINT' ? tokens[5] : undefined;
          if (table) perTable.set(table, [...(perTable.get(table) ?? []), line]);
          else rest.push(line);
        }
      }
      const restoreList = async (name: string, lines: string[], j: number): Promise<void> => {
        if (lines.length === 0) return;
        const list = join(workDir, `list-${name}`);
        writeFileSync(list, `${lines.join('\n')}\n`);
        await must(runMeasured(pgBin('pg_restore'), ['-j', String(j), '--exit-on-error', '-L', list, '-d', dst, post], restoreEnv));
      };
      let next = 0;
      await Promise.all(Array.from({ length: jobs }, async () => {
        while (next < bySize.length) {
          const table = bySize[next++];
          await must(runMeasured('bash', ['-o', 'pipefail', '-c',
            `${pgBin('psql')} -X -q -d '${src}' -c 'COPY ${table} TO STDOUT${opts}' | ${env}${pgBin('psql')} -X -q -v ON_ERROR_STOP=1 -d '${dst}' `
            + `-c BEGIN -c 'TRUNCATE ONLY ${table}' -c 'COPY ${table} FROM STDIN${freeze}' -c COMMIT`]));
          if (overlapIndexes) {
            const relname = table.split('.')[1];
            await restoreList(relname, perTable.get(relname) ?? [], 1);
          }
        }
      }));
      if (overlapIndexes) await restoreList('rest', rest, jobs);
      else await must(runMeasured(pgBin('pg_restore'), ['-j', String(jobs), '--exit-on-error', '-d', dst, post], restoreEnv));
      return performance.now() - started;
    };
    const analyze = async (): Promise<number> => {
      await restore(jobs)();
      return (await must(runMeasured(pgBin('vacuumdb'), ['--analyze-only', '-j', String(jobs), '-q', '-d', dst]))).wallMs;
    };
    const verify = async (): Promise<number> => {
      // Row count plus an order-independent content hash per table, on both sides at once, N tables at a time.
      await restore(jobs)();
      const started = performance.now();
      let next = 0;
      await Promise.all(Array.from({ length: jobs }, async () => {
        while (next < tables.length) {
          const sql = `SELECT count(*), sum(hashtext(t::text)::bigint) FROM ${tables[next++]} t`;
          const [a, b] = await Promise.all([source.sql(sql, BENCH_DB), target.sql(sql, FRESH_DB)]);
          if (a !== b) throw new Error(`verify variant found a difference: ${a} vs ${b}`);
        }
      }));
      return performance.now() - started;
    };
    const variants: Variant[] = [
      { name: `dump -Fd -j${jobs} -Z0`, what: 'B\'s dump (baseline)', run: dump(['-Fd', '-j', String(jobs), '-Z0']) },
      { name: `dump -Fd -j${jobs} (default gzip)`, what: 'compression on', run: dump(['-Fd', '-j', String(jobs)]) },
      { name: `restore -j${jobs}`, what: 'B\'s restore (baseline)', run: restore(jobs) },
      { name: `restore -j${jobs * 2}`, what: 'jobs = 2 × cores', run: restore(jobs * 2) },
      { name: `restore -j${jobs} mwm=512MB`, what: 'PGOPTIONS=-c maintenance_work_mem=512MB', run: restore(jobs, '-c maintenance_work_mem=512MB') },
      { name: `restore -j${jobs} sync_commit=off`, what: 'PGOPTIONS=-c synchronous_commit=off', run: restore(jobs, '-c synchronous_commit=off') },
      { name: `stream text -j${jobs}`, what: 'pre-data; COPY psql|psql per table (TRUNCATE + FREEZE), N at a time; post-data -j N. No dump file', run: stream('text') },
      { name: `stream binary -j${jobs}`, what: 'same with COPY (FORMAT binary)', run: stream('binary') },
      {
        name: `stream binary -j${jobs} mwm=512MB sync_commit=off`,
        what: 'same, target sessions with maintenance_work_mem=512MB, synchronous_commit=off',
        run: stream('binary', '-c maintenance_work_mem=512MB -c synchronous_commit=off'),
      },
      {
        name: `stream text -j${jobs} overlap indexes`,
        what: 'stream text, each table\'s indexes built right after its rows, while other tables stream (the runner\'s design)',
        run: stream('text', undefined, true),
      },
      {
        name: `stream binary -j${jobs} overlap indexes`,
        what: 'same, each table\'s indexes built right after its rows, while other tables stream',
        run: stream('binary', undefined, true),
      },
      {
        name: `stream binary -j${jobs} overlap indexes mwm=512MB`,
        what: 'same, maintenance_work_mem=512MB',
        run: stream('binary', '-c maintenance_work_mem=512MB', true),
      },
      { name: `vacuumdb --analyze-only -j${jobs}`, what: 'ANALYZE after restore (timed alone)', run: analyze },
      { name: `verify count+hashtext -j${jobs}`, what: 'row count and content hash per table, both sides concurrently (timed alone)', run: verify },
    ];
    if (only !== undefined) variants.splice(0, variants.length, ...variants.filter((v) => only!.split(',').some((o) => v.name.includes(o))));
    // Round-robin, not variant after variant: on a shared machine the load drifts, and every variant should see the same drift.
    const times = variants.map(() => [] as number[]);
    for (let round = 1; round <= options.runs; round++) {
      for (const [i, v] of variants.entries()) {
        times[i].push(await v.run());
        progress(`round ${round}/${options.runs}: ${v.name}: ${(times[i][round - 1] / 1000).toFixed(2)} s; load ${loadavg()[0].toFixed(2)}`);
      }
    }
    const results = variants.map((v, i) => ({
      name: v.name,
      what: v.what,
      seconds: spread(times[i].map((t) => t / 1000)),
      runs: times[i].map((t) => +(t / 1000).toFixed(3)),
    }));
    const date = new Date().toISOString();
    const doc = {
      date,
      machine: { nproc: cpus().length, cpuModel: cpus()[0]?.model, loadavgEnd: loadavg() },
      postgres: await source.sql('SELECT version()'),
      settings: CLUSTER_SETTINGS,
      dataset: { name: options.dataset, bytes, size: options.size },
      jobs,
      results,
    };
    const file = options.save ? join(resolve(__dirname), 'results', `${date.slice(0, 10)}-experiments-${options.scaleName}.json`) : join(tmpdir(), `pitr-experiments-${process.pid}.json`);
    mkdirSync(resolve(file, '..'), { recursive: true });
    writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
    process.stdout.write(`\n| variant | what | seconds, median (min–max) of ${options.runs} |\n| --- | --- | --- |\n`);
    for (const r of results) process.stdout.write(`| \`${r.name}\` | ${r.what} | ${r.seconds.median.toFixed(2)} (${r.seconds.min.toFixed(2)}–${r.seconds.max.toFixed(2)}) |\n`);
    process.stdout.write(`\nDataset ${(bytes / 2 ** 20).toFixed(0)} MiB; JSON: ${file}\n`);
    return 0;
  } finally {
    await cleanup();
  }
}

main().then((code) => process.exit(code), (err: Error) => {
  process.stderr.write(`experiments: FAILED: ${err.message}\n`);
  process.exit(1);
});
