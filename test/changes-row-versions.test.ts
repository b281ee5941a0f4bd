/**
 * The record of writes made after T, paired by row version (rowVersionCheck): on a real point-in-time copy (a base
 * backup and the WAL archive replayed to T, as RDS restores an instance), a row nobody wrote since T is the same row
 * version (ctid, xmin) on both sides, and only the others are compared by content. The record must be the one a
 * comparison of every row by content gives, whatever was done after T: writes, a row written again as it was, a
 * transaction open across T, a table rewritten (its rows moved), a column dropped and added again, an enum label
 * renamed.
 */
import { rmSync } from 'node:fs';
import { MASTER, masterTarget, testCa } from './pg-test-env';
import { StepLog } from '../buildspec/runner/log';
import { changesSchemaName, recordChanges, type ChangesRecord } from '../buildspec/runner/postgres/changes';
import { PgDataPath } from '../buildspec/runner/postgres/data-path';
import { connect } from '../buildspec/runner/postgres/process';
import { LOOPBACK, SECOND_HOST, LocalCluster, makeWorkDir, quoteIdent } from '../local/cluster';

jest.setTimeout(300_000);

let original: LocalCluster;
let copy: LocalCluster | undefined;
let workDir: string;
const DB = 'row versions';

const serverNow = async (cluster: LocalCluster): Promise<Date> =>
  new Date(await cluster.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"));

beforeAll(async () => {
  const tls = await testCa();
  original = await LocalCluster.create({ host: LOOPBACK, tls, master: { username: MASTER.username, password: MASTER.password }, archiveWal: true });
  workDir = await makeWorkDir('pitr-row-versions-');
});

afterAll(async () => {
  await Promise.all([copy?.destroy(), original?.destroy()]);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

test('paired by row version on a real point-in-time copy: the same record as a comparison of every row by content, '
  + 'through a row written again as it was, a transaction open across T, a table rewritten, a column dropped and added again, an enum label renamed, '
  + 'a table renamed into place, a table written on the copy', async () => {
  await original.sql(`CREATE DATABASE ${quoteIdent(DB)} OWNER ${MASTER.username}`);
  await original.sql(`SET ROLE ${MASTER.username};
    CREATE TABLE public.t (id bigint PRIMARY KEY, v text NOT NULL, n numeric(8, 2));
    INSERT INTO public.t SELECT g, 'v' || g, g / 4.0 FROM generate_series(1, 200) g;
    CREATE TABLE public.moved (id int PRIMARY KEY, v text NOT NULL);
    INSERT INTO public.moved SELECT g, 'm' || g FROM generate_series(1, 100) g;
    CREATE TABLE public.readded (id int PRIMARY KEY, a int NOT NULL, b int);
    INSERT INTO public.readded SELECT g, g, g FROM generate_series(1, 10) g;
    CREATE TYPE public.mood AS ENUM ('sad', 'ok');
    CREATE TABLE public.moods (id int PRIMARY KEY, m public.mood NOT NULL);
    INSERT INTO public.moods SELECT g, CASE WHEN g % 2 = 0 THEN 'sad' ELSE 'ok' END::public.mood FROM generate_series(1, 10) g;
    CREATE TABLE public.named (k text PRIMARY KEY, v int NOT NULL);
    INSERT INTO public.named SELECT 'k' || g, g FROM generate_series(1, 10) g;
    -- An enum that only gains a label after T and a composite of plain fields: their rows' text cannot have changed.
    CREATE TYPE public.stage AS ENUM ('draft', 'done'); CREATE TYPE public.addr AS (street text, zip text);
    CREATE TABLE public.statuses (id int PRIMARY KEY, s public.stage NOT NULL, home public.addr, seen public.stage[]);
    INSERT INTO public.statuses SELECT g, 'draft', ROW('Main St ' || g, '1000' || g)::public.addr, '{draft,done}' FROM generate_series(1, 10) g;
    CREATE TABLE public.oncopy (id int PRIMARY KEY, v text NOT NULL);
    INSERT INTO public.oncopy SELECT g, 'c' || g FROM generate_series(1, 10) g;
    -- Two tables filled by one transaction: the same xmin, the same places; one is renamed into the other's name after T.
    BEGIN;
    CREATE TABLE public.swapped (id int PRIMARY KEY, v text NOT NULL);
    CREATE TABLE public.swapped_new (id int PRIMARY KEY, v text NOT NULL);
    INSERT INTO public.swapped SELECT g, 'old' || g FROM generate_series(1, 10) g;
    INSERT INTO public.swapped_new SELECT g, 'new' || g FROM generate_series(1, 10) g;
    COMMIT`, DB);
  // PostgreSQL 18: a virtual generated column, whose expression can change after T with no new row version.
  const virtual = Number(await original.sql('SHOW server_version_num')) >= 180000;
  if (virtual) {
    await original.sql(`SET ROLE ${MASTER.username}; CREATE TABLE public.virt (id int PRIMARY KEY, a int NOT NULL, d int GENERATED ALWAYS AS (a * 2) VIRTUAL);
      INSERT INTO public.virt SELECT g, g FROM generate_series(1, 10) g`, DB);
  }
  const base = await original.baseBackup();

  // A transaction open across T: it has written before T and commits after it.
  const open = await connect(masterTarget(original), DB);
  try {
    await open.query("BEGIN; UPDATE public.t SET v = 'open across T' WHERE id = 7");
    await new Promise((r) => setTimeout(r, 50));
    const at = await serverNow(original);
    await new Promise((r) => setTimeout(r, 50));
    await open.query('COMMIT');
    await original.sql(`SET ROLE ${MASTER.username};
      UPDATE public.t SET v = 'changed' WHERE id IN (1, 2, 3);
      UPDATE public.t SET v = v, n = n WHERE id = 9;
      DELETE FROM public.t WHERE id IN (4, 5);
      INSERT INTO public.t VALUES (201, 'new', NULL), (202, 'new', 1);
      UPDATE public.moved SET v = 'changed' WHERE id = 3;
      ALTER TABLE public.readded DROP COLUMN b; ALTER TABLE public.readded ADD COLUMN b int;
      UPDATE public.readded SET b = id WHERE id <= 5; -- as at T: only rows 6 to 10 differ (NULL now)
      ALTER TYPE public.mood RENAME VALUE 'sad' TO 'blue';
      UPDATE public.named SET v = -v WHERE k = 'k3';
      CREATE TYPE public.size AS ENUM ('s', 'm'); ALTER TABLE public.named ADD COLUMN sz public.size;
      UPDATE public.named SET sz = 'm' WHERE k = 'k3';
      ALTER TABLE public.swapped RENAME TO swapped_old; ALTER TABLE public.swapped_new RENAME TO swapped;
      ALTER TYPE public.stage ADD VALUE 'archived';`, DB);
    await original.sql(`SET ROLE ${MASTER.username}; UPDATE public.statuses SET s = 'archived' WHERE id = 1; UPDATE public.statuses SET home.zip = '99999' WHERE id = 2`, DB);
    if (virtual) await original.sql(`SET ROLE ${MASTER.username}; ALTER TABLE public.virt ALTER COLUMN d SET EXPRESSION AS (a * 3)`, DB);
    // Rewritten: every row moves to another place, with its xmin.
    await original.sql('VACUUM FULL public.moved', DB);
    await original.archiveCurrentWal();
    copy = await original.recoverTo(base, at, { host: SECOND_HOST });
  } finally {
    await open.end().catch(() => undefined);
  }
  // The copy is at T: the open transaction's write is not there, the later ones neither.
  expect(await copy.sql("SELECT string_agg(v, ',' ORDER BY id) FROM public.t WHERE id IN (1, 7, 9)", DB)).toBe('v1,v7,v9');
  // Something writes on the copy (a scheduled job there, say), with the same content: that table's row versions are not T's.
  await copy.sql(`SET ROLE ${MASTER.username}; UPDATE public.oncopy SET v = v WHERE id = 1`, DB);

  const stamp = '20260505000001';
  const log = new StepLog(() => undefined);
  const [copied] = await new PgDataPath({ streamMinBytes: 0 }).copy(masterTarget(copy), masterTarget(original), { databases: [DB], strategy: 'swap', jobs: 2, stamp, workDir, log });
  const lines: string[] = [];
  const pointInTimeCopy = masterTarget(copy);
  const logged = new StepLog((l) => lines.push(l));
  const byVersion = await recordChanges(masterTarget(original), { database: DB, keptAs: copied.keptAs!, stamp, log: logged, pointInTimeCopy });
  const byContent = await recordChanges(masterTarget(original), { database: DB, keptAs: copied.keptAs!, stamp: '20260505000002', log, pointInTimeCopy, rowVersions: false });

  expect(byVersion.comparison).toMatch(/^rows whose version \(ctid, xmin\) is the same on the point-in-time copy and before the recovery are as at T/);
  expect(byContent.comparison).not.toContain('version');
  const counts = (r: ChangesRecord): Record<string, string> =>
    Object.fromEntries(r.tables.map((t) => [t.table, `${t.inserted}+ ${t.changed ?? '?'}~ ${t.deleted}-`]));
  expect(counts(byVersion)).toEqual({
    'public.moods': '0+ 5~ 0-',
    'public.moved': '0+ 1~ 0-',
    'public.named': '0+ 1~ 0-',
    'public.oncopy': '0+ 0~ 0-',
    'public.readded': '0+ 5~ 0-',
    'public.statuses': '0+ 2~ 0-',
    'public.swapped': '0+ 10~ 0-',
    'public.swapped_new': '0+ ?~ 10-',
    'public.swapped_old': '10+ ?~ 0-',
    'public.t': '2+ 4~ 2-',
    ...(virtual ? { 'public.virt': '0+ 10~ 0-' } : {}),
  });
  expect(counts(byContent)).toEqual(counts(byVersion));
  const tables = Object.fromEntries(byVersion.tables.map((t) => [t.table, t]));
  // Only the rows whose version differs were compared by content: 1, 2, 3, 7 and 9 of public.t; the moved rows of the
  // rewritten table; every row where a column was dropped and added again, or an enum label renamed.
  expect(tables['public.t']).toMatchObject({ rowsCompared: 5, rowsBefore: 200, fullBecause: undefined });
  // VACUUM FULL packs the live rows again: all but those before the first dead one (3's old version) move.
  expect(tables['public.moved'].rowsBefore).toBe(100);
  expect(tables['public.moved'].rowsCompared).toBeGreaterThanOrEqual(95);
  expect(tables['public.swapped'].fullBecause).toContain('not the same table as at T');
  if (virtual) expect(tables['public.virt'].fullBecause).toContain('virtual generated columns ("d")');
  // An enum that only gained a label and an unchanged composite do not stop row versions: 2 of 10 rows compared.
  expect(tables['public.statuses']).toMatchObject({ rowsCompared: 2, rowsBefore: 10, fullBecause: undefined });
  expect(tables['public.oncopy'].fullBecause).toContain('written on the point-in-time copy since its recovery');
  expect(tables['public.readded'].fullBecause).toContain('columns dropped and added again, or retyped, after T ("b")');
  expect(tables['public.moods'].fullBecause).toContain('an enum label renamed');
  // A text key is compared by content in full, row versions or not.
  expect(tables['public.named']).toMatchObject({ rowsCompared: 10, fullBecause: undefined });

  // The same rows kept, with the same row at T.
  for (const t of ['public__t', 'public__moved', 'public__readded', 'public__moods']) {
    const kept = (s: string): Promise<string> =>
      original.sql(`SELECT string_agg(pitr_change || ':' || id || ':' || coalesce(pitr_row_at_t, '-'), ',' ORDER BY id) FROM ${quoteIdent(changesSchemaName(s))}.${t}`, DB);
    expect(await kept(stamp)).toBe(await kept('20260505000002'));
  }
  expect(await original.sql(`SELECT string_agg(pitr_change || ':' || id, ',' ORDER BY id) FROM ${quoteIdent(changesSchemaName(stamp))}.public__t`, DB))
    .toBe('changed:1,changed:2,changed:3,deleted:4,deleted:5,changed:7,inserted:201,inserted:202');
  expect(lines.join('\n')).toContain('comparison: rows whose version (ctid, xmin) is the same');

  // A table rewritten after T moves more rows than rowVersionMaxDiffering: compared by content instead, the same record.
  const capped = await recordChanges(masterTarget(original), {
    database: DB, keptAs: copied.keptAs!, stamp: '20260505000003', log, pointInTimeCopy, rowVersionMaxDiffering: 50,
  });
  expect(counts(capped)).toEqual(counts(byVersion));
  const cappedMoved = capped.tables.find((t) => t.table === 'public.moved')!;
  expect(cappedMoved.fullBecause).toMatch(/^\d+ row versions differ from T's \(more than 50: rewritten after T/);
  expect(cappedMoved.rowsCompared).toBe(100);

  // Where the system identifier cannot be read (a provider that revokes pg_control_system), the record is only slower.
  await original.sql('REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC', DB);
  const refusedLines: string[] = [];
  const refused = await recordChanges(masterTarget(original), {
    database: DB, keptAs: copied.keptAs!, stamp: '20260505000004', log: new StepLog((l) => refusedLines.push(l)), pointInTimeCopy,
  });
  expect(counts(refused)).toEqual(counts(byVersion));
  expect(refused.comparison).not.toContain('version');
  expect(refusedLines.join('\n')).toMatch(/row versions not used: the system identifiers that would show the point-in-time copy is a physical copy cannot be read \(permission denied/);

  // The kept rows hold what T's types cannot: a label renamed after T, a column of a type created after T (as text).
  const keptIn = quoteIdent(changesSchemaName(stamp));
  expect(await original.sql(`SELECT string_agg(id || ':' || m, ',' ORDER BY id) FROM ${keptIn}.public__moods`, DB)).toBe('2:blue,4:blue,6:blue,8:blue,10:blue');
  expect(await original.sql(`SELECT k || ':' || v || ':' || sz || ':' || pg_typeof(sz) FROM ${keptIn}.public__named`, DB)).toBe('k3:-3:m:text');
  // The replay casts the label back to the type at T (where 'blue' does not exist: it fails there, and the note says why).
  expect(byVersion.replaySql).toContain('"m" = a."m"::public.mood');
  expect(tables['public.moods'].notes.join(' ')).toContain('columns "m" are kept as text (retyped after T, or their type\'s values changed): the replay casts them');
  expect(tables['public.statuses'].notes.join(' ')).toContain('columns "s", "seen" are kept as text');
  expect(tables['public.t'].notes.join(' ')).not.toContain('kept as text');
});
