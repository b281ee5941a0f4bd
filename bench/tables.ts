/**
 * Table-level recovery against a full database copy (issue #12, "Speed"):
 * recovering one table that holds about 5% of a database must take at most
 * 15% of the full database copy's time, both counted from the point-in-time
 * copy being reachable to the result verified on the original.
 *
 *   ts-node --project tsconfig.dev.json bench/tables.ts [--mb 300] [--rounds 3] [--out bench/results/<date>-tables]
 *
 * Two clusters on two hosts (the production route): the source on
 * 127.0.0.2 plays the point-in-time copy, the target on 127.0.0.1 the
 * original. The database has 20 tables of the same shape and size, so each
 * is 5% of it; `public.t01` is recovered, and on the original half of its
 * rows are deleted (the damage). Rounds interleave the two paths (table,
 * full, table, full, ...), so load on the shared machine hits both alike;
 * medians are reported. Untimed between runs: the source database is
 * recreated from a pristine template (a table recovery rearranges the
 * disposable copy), and what the previous run left on the target is dropped.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster } from './dataset';
import { TABLES, arg, generate, median, target } from './ledger-dataset';
import { StepLog } from '../buildspec/runner/log';
import { PgDataPath } from '../buildspec/runner/postgres/data-path';
import { PgTablePath } from '../buildspec/runner/postgres/tables';
import { LOOPBACK, SECOND_HOST, quoteIdent } from '../local/cluster';

const DB = 'bench_tables';
const PRISTINE = 'bench_tables_pristine';

async function main(): Promise<void> {
  const mb = Number(arg('mb', '300'));
  const rounds = Number(arg('rounds', '3'));
  const out = arg('out', join('bench', 'results', `${new Date().toISOString().slice(0, 10)}-tables`));
  // About 130 bytes of heap and 40 of indexes per row.
  const rowsPerTable = Math.round((mb * 1024 * 1024) / TABLES / 170);
  const [source, original] = await Promise.all([startCluster(SECOND_HOST), startCluster(LOOPBACK)]);
  const scratch = mkdtempSync(join(tmpdir(), 'pitr-bench-tables-'));
  const quiet = new StepLog(() => undefined);
  try {
    console.log(`generating ${TABLES} tables x ${rowsPerTable} rows on both clusters ...`);
    await Promise.all([generate(source, PRISTINE, rowsPerTable), generate(original, DB, rowsPerTable)]);
    await original.sql('DELETE FROM public.t01 WHERE id % 2 = 0', DB);
    const sizes = await source.sql('SELECT pg_database_size(current_database()) || \' \' || pg_total_relation_size(\'public.t01\')', PRISTINE);
    const [dbBytes, tableBytes] = sizes.split(' ').map(Number);
    console.log(`database ${(dbBytes / 2 ** 20).toFixed(0)} MiB; public.t01 ${(tableBytes / 2 ** 20).toFixed(1)} MiB (${((100 * tableBytes) / dbBytes).toFixed(1)}%)`);

    const freshSource = async (): Promise<void> => {
      await source.sql(`DROP DATABASE IF EXISTS ${quoteIdent(DB)} WITH (FORCE)`);
      await source.sql(`CREATE DATABASE ${quoteIdent(DB)} TEMPLATE ${quoteIdent(PRISTINE)} STRATEGY FILE_COPY`);
      await Promise.all([source.sql('CHECKPOINT'), original.sql('CHECKPOINT')]);
    };
    const tableMs: number[] = [];
    const fullMs: number[] = [];
    for (let round = 0; round < rounds; round++) {
      await freshSource();
      const stamp = `2026010100${String(round).padStart(2, '0')}00`;
      let started = Date.now();
      const result = await new PgTablePath().recoverTables(target(source), target(original), {
        database: DB, tables: [{ schema: 'public', table: 't01' }], stamp, log: quiet,
      });
      tableMs.push(Date.now() - started);
      if (!result.verified) throw new Error('table recovery not verified');
      await original.sql(`DROP SCHEMA ${quoteIdent(result.schema)} CASCADE`, DB);

      await freshSource();
      const workDir = mkdtempSync(join(scratch, 'dump-'));
      started = Date.now();
      const copied = await new PgDataPath().copy(target(source), target(original), {
        databases: [DB], strategy: 'swap', jobs: 2, stamp: `2026010200${String(round).padStart(2, '0')}00`, workDir, log: quiet,
      });
      fullMs.push(Date.now() - started);
      if (!copied.every((r) => r.verified)) throw new Error('full copy not verified');
      // Back to the damaged original for the next round: the swap kept it under its pre-recovery name.
      await original.sql(`DROP DATABASE ${quoteIdent(DB)} WITH (FORCE)`);
      await original.sql(`ALTER DATABASE ${quoteIdent(copied[0].keptAs!)} RENAME TO ${quoteIdent(DB)}`);
      rmSync(workDir, { recursive: true, force: true });
      console.log(`round ${round + 1}: table ${tableMs[round]} ms, full ${fullMs[round]} ms`);
    }
    const summary = {
      date: new Date().toISOString(),
      route: 'two-hosts (source 127.0.0.2, original 127.0.0.1), no TLS',
      databaseMiB: Math.round(dbBytes / 2 ** 20),
      tableMiB: Number((tableBytes / 2 ** 20).toFixed(1)),
      tableSharePercent: Number(((100 * tableBytes) / dbBytes).toFixed(1)),
      rounds,
      tableRecoveryMs: tableMs,
      fullCopyMs: fullMs,
      medianTableMs: median(tableMs),
      medianFullMs: median(fullMs),
      ratioPercent: Number(((100 * median(tableMs)) / median(fullMs)).toFixed(1)),
      targetPercent: 15,
    };
    console.log(JSON.stringify(summary, null, 2));
    writeFileSync(`${out}.json`, `${JSON.stringify(summary, null, 2)}\n`);
    writeFileSync(`${out}.md`, [
      '# Table recovery vs full database copy', '',
      `${summary.date}, ${summary.route}; database ${summary.databaseMiB} MiB in ${TABLES} equal tables, recovered table public.t01 ${summary.tableMiB} MiB `
        + `(${summary.tableSharePercent}%). Both counted from the point-in-time copy reachable to the result verified on the original `
        + '(the table path also writes its change report). Interleaved rounds; medians.', '',
      '| path | runs (ms) | median (ms) |', '| --- | --- | --- |',
      `| table recovery (TABLES=public.t01) | ${tableMs.join(', ')} | ${summary.medianTableMs} |`,
      `| full database copy (swap, jobs 2) | ${fullMs.join(', ')} | ${summary.medianFullMs} |`, '',
      `Ratio: **${summary.ratioPercent}%** of the full copy's time (target: at most ${summary.targetPercent}%).`, '',
    ].join('\n'));
  } finally {
    await Promise.allSettled([source.destroy(), original.destroy()]);
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
