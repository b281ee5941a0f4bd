/**
 * The record of writes made after the restore time against the recovery's
 * copy (issue #21, "Speed"): on a database where 1% of the rows changed
 * after T, computing the record must cost at most 25% of the recovery's copy
 * time.
 *
 *   npx projen bench --changes [--mb 300] [--rounds 3] [--commit-times] [--out bench/results/<date>-changes]
 *   (or: ts-node --project tsconfig.dev.json bench/changes.ts ...)
 *
 * Two clusters on two hosts (the production route): the original on
 * 127.0.0.1, and its point-in-time copy on 127.0.0.2, a real one (a base
 * backup and the original's WAL archive replayed to T), as RDS restores an
 * instance: a physical copy, so the record pairs rows by row version. The
 * database has 20 tables of the same shape; on the original, 1% of each
 * table's rows were written after T: a third updated, a third deleted, a
 * third inserted. Each round times the swap copy (point-in-time copy
 * reachable -> swapped in and verified), then the record (recordChanges:
 * pre-recovery copy on the original vs the state at T, read on the
 * point-in-time copy as a recovery reads it) twice, by row version (the
 * default) and by content (rowVersions false), in alternating order.
 * Untimed between rounds: the copy's database is recreated from a pristine
 * file copy of it (FILE_COPY keeps every row version), the recovered
 * database dropped, the pre-recovery copy renamed back. Medians are
 * reported.
 *
 * `--commit-times`: the original runs with track_commit_timestamp on and the
 * record is given T (the original's clock between the generation and the
 * writes after T), so it reads in full only the rows committed after T (the
 * commit-time filter), with no margin: the generated rows committed seconds
 * before T here, where in production the margin (5 minutes) covers only the
 * rows written in the 5 minutes before T.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLUSTER_SETTINGS } from './dataset';
import { TABLES, arg, generate, median, target } from './ledger-dataset';
import { StepLog } from '../buildspec/runner/log';
import { changesSchemaName, recordChanges } from '../buildspec/runner/postgres/changes';
import { PgDataPath } from '../buildspec/runner/postgres/data-path';
import { LOOPBACK, LocalCluster, SECOND_HOST, quoteIdent } from '../local/cluster';

const DB = 'bench_changes';
const PRISTINE = 'bench_changes_pristine';

/** 1% of each table's rows written after T: ids ending in 01..33 of every 10000th block updated, deleted, and as many inserted. */
async function writeAfterT(cluster: LocalCluster, database: string): Promise<void> {
  for (let i = 1; i <= TABLES; i++) {
    const t = `public.t${String(i).padStart(2, '0')}`;
    await cluster.sql(`UPDATE ${t} SET amount = amount + 1, memo = 'changed after T' WHERE id % 300 = 1;
      DELETE FROM ${t} WHERE id % 300 = 2;
      INSERT INTO ${t} (account, amount, booked, memo) SELECT account, amount, now(), 'inserted after T' FROM ${t} WHERE id % 300 = 3;`, database);
  }
  await cluster.sql('VACUUM ANALYZE', database);
}

export async function benchChanges(): Promise<void> {
  const mb = Number(arg('mb', '300'));
  const rounds = Number(arg('rounds', '3'));
  const commitTimes = process.argv.includes('--commit-times');
  const out = arg('out', join('bench', 'results', `${new Date().toISOString().slice(0, 10)}-changes${commitTimes ? '-commit-times' : ''}`));
  const rowsPerTable = Math.round((mb * 1024 * 1024) / TABLES / 170);
  const original = await LocalCluster.create({
    settings: commitTimes ? { ...CLUSTER_SETTINGS, track_commit_timestamp: 'on' } : CLUSTER_SETTINGS, host: LOOPBACK, archiveWal: true,
  });
  let source: LocalCluster | undefined;
  const scratch = mkdtempSync(join(tmpdir(), 'pitr-bench-changes-'));
  const quiet = new StepLog(() => undefined);
  const load: number[][] = [loadavg()];
  try {
    console.log(`generating ${TABLES} tables x ${rowsPerTable} rows on the original, then its point-in-time copy at T ...`);
    await generate(original, DB, rowsPerTable);
    const base = await original.baseBackup();
    const restoreTime = new Date(await original.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"));
    await new Promise((r) => setTimeout(r, 50));
    await writeAfterT(original, DB);
    await original.archiveCurrentWal();
    source = await original.recoverTo(base, restoreTime, { host: SECOND_HOST });
    rmSync(base, { recursive: true, force: true });
    // The archive has served: archiving the copy's writes would slow every round's copy (by about 15% in one run),
    // which earlier versions of this bench did not have, and the ratio is against the copy.
    await original.sql("ALTER SYSTEM SET archive_command = '/bin/true'");
    await original.sql('SELECT pg_reload_conf()');
    await source.sql(`CREATE DATABASE ${quoteIdent(PRISTINE)} TEMPLATE ${quoteIdent(DB)} STRATEGY FILE_COPY`);
    const dbBytes = Number(await source.sql('SELECT pg_database_size(current_database())', PRISTINE));
    const rowsAtT = TABLES * rowsPerTable;
    const copyMs: number[] = [];
    const recordMs: number[] = [];
    const byContentMs: number[] = [];
    let counts = '';
    let compared = '';
    for (let round = 0; round < rounds; round++) {
      await source.sql(`DROP DATABASE IF EXISTS ${quoteIdent(DB)} WITH (FORCE)`);
      await source.sql(`CREATE DATABASE ${quoteIdent(DB)} TEMPLATE ${quoteIdent(PRISTINE)} STRATEGY FILE_COPY`);
      await Promise.all([source.sql('CHECKPOINT'), original.sql('CHECKPOINT')]);
      const stamp = `2026010300${String(round).padStart(2, '0')}00`;
      const workDir = mkdtempSync(join(scratch, 'dump-'));
      let started = Date.now();
      const copied = await new PgDataPath().copy(target(source), target(original), { databases: [DB], strategy: 'swap', jobs: 2, stamp, workDir, log: quiet });
      copyMs.push(Date.now() - started);
      if (!copied.every((r) => r.verified)) throw new Error('copy not verified');
      await original.sql('CHECKPOINT');
      // The state at T is read on the point-in-time copy (the source), as a recovery does.
      const timeBound = commitTimes ? { restoreTime, commitTimeMarginMs: 0 } : {};
      const pointInTimeCopy = target(source);
      const keptAs = copied[0].keptAs!;
      const timed = async (rowVersions: boolean): Promise<Awaited<ReturnType<typeof recordChanges>>> => {
        const at = Date.now();
        const r = await recordChanges(target(original), {
          database: DB, keptAs, stamp: rowVersions ? stamp : `${stamp.slice(0, -2)}99`, log: quiet, pointInTimeCopy, rowVersions, ...timeBound,
        });
        (rowVersions ? recordMs : byContentMs).push(Date.now() - at);
        return r;
      };
      // By row version and by content, in alternating order: neither always runs first after the copy.
      const [record, byContent] = round % 2 === 0
        ? [await timed(true), await timed(false)]
        : await timed(false).then(async (c) => [await timed(true), c]);
      compared = `${record.rowsCompared} of ${record.rowsBefore} rows before the recovery compared by content (${record.comparison})`;
      const perTable = (r: typeof record): string => r.tables.map((t) => `${t.inserted}/${t.changed}/${t.deleted}`).join(' ');
      if (perTable(record) !== perTable(byContent)) {
        throw new Error(`the record by row version differs from the one by content: ${perTable(record)} against ${perTable(byContent)}`);
      }
      await original.sql(`DROP SCHEMA ${quoteIdent(changesSchemaName(`${stamp.slice(0, -2)}99`))} CASCADE`, DB);
      const sum = (f: (t: typeof record.tables[number]) => number): number => record.tables.reduce((s, t) => s + f(t), 0);
      counts = `${sum((t) => t.inserted)} inserted, ${sum((t) => t.changed ?? 0)} changed, ${sum((t) => t.deleted)} deleted`;
      await original.sql(`DROP DATABASE ${quoteIdent(DB)} WITH (FORCE)`);
      await original.sql(`ALTER DATABASE ${quoteIdent(copied[0].keptAs!)} RENAME TO ${quoteIdent(DB)}`);
      rmSync(workDir, { recursive: true, force: true });
      load.push(loadavg());
      console.log(`round ${round + 1}: copy ${copyMs[round]} ms, record ${recordMs[round]} ms, by content ${byContentMs[round]} ms (${counts}; schema ${changesSchemaName(stamp)})`);
    }
    const summary = {
      date: new Date().toISOString(),
      route: 'two-hosts (source 127.0.0.2, original 127.0.0.1), no TLS',
      databaseMiB: Math.round(dbBytes / 2 ** 20),
      rowsAtT,
      writtenAfterT: counts,
      commitTimeFilter: commitTimes,
      compared,
      rounds,
      copyMs,
      recordMs,
      byContentMs,
      medianCopyMs: median(copyMs),
      medianRecordMs: median(recordMs),
      medianByContentMs: median(byContentMs),
      ratioPercent: Number(((100 * median(recordMs)) / median(copyMs)).toFixed(1)),
      byContentRatioPercent: Number(((100 * median(byContentMs)) / median(copyMs)).toFixed(1)),
      targetPercent: 25,
      loadAverages1m: load.map((l) => Number(l[0].toFixed(2))),
    };
    console.log(JSON.stringify(summary, null, 2));
    const without = commitTimes ? 'by commit time' : 'by content';
    writeFileSync(`${out}.json`, `${JSON.stringify(summary, null, 2)}\n`);
    writeFileSync(`${out}.md`, [
      `# Record of writes made after T vs the recovery's copy${commitTimes ? ', with the commit-time filter' : ''}`, '',
      `${summary.date}, ${summary.route}; database ${summary.databaseMiB} MiB in ${TABLES} equal tables, ${rowsAtT} rows at T; after T: ${counts} `
        + '(1% of the rows). Copy: swap, jobs 2, from the point-in-time copy reachable to swapped in and verified. Record: recordChanges, '
        + `pre-recovery copy on the original vs the state at T read on the point-in-time copy${commitTimes ? ', track_commit_timestamp on, given T, margin 0' : ''}: ${compared}. Medians.`, '',
      '| step | runs (ms) | median (ms) |', '| --- | --- | --- |',
      `| copy (swap) | ${copyMs.join(', ')} | ${summary.medianCopyMs} |`,
      `| record of writes after T (by row version, the default) | ${recordMs.join(', ')} | ${summary.medianRecordMs} |`,
      `| the same record without row versions (rowVersions false: ${without}) | ${byContentMs.join(', ')} | ${summary.medianByContentMs} |`, '',
      `Ratio: **${summary.ratioPercent}%** of the copy's time (target: at most ${summary.targetPercent}%); without row versions `
        + `${summary.byContentRatioPercent}%. 1-minute load averages `
        + `(2 cores, shared with other sessions) at start and after each round: ${summary.loadAverages1m.join(', ')}.`, '',
    ].join('\n'));
  } finally {
    await Promise.allSettled([source?.destroy(), original.destroy()]);
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (require.main === module) {
  benchChanges().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
