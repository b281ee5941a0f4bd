/**
 * The data path end to end on real PostgreSQL: an RDS-like pair of clusters
 * (non-superuser master), the rich dataset as the point-in-time copy, and
 * the same dataset plus damage as the original. The assertions do not trust
 * the runner's own verification: they compare pg_dump --schema-only, per
 * table sorted-row digests and database properties computed independently.
 */
import { rmSync } from 'node:fs';
import {
  MASTER, ODD_DATABASE, contentDigest, databaseProperties, databasesLike, loadDataset, masterTarget, masterUri, schemaDump, startSourceAndTarget,
} from './pg-test-env';
import { runCopyCli } from '../buildspec/runner/copy-cli';
import { StepLog } from '../buildspec/runner/log';
import type { CopyOptions } from '../buildspec/runner/ports';
import { PgDataPath } from '../buildspec/runner/postgres/data-path';
import { keptName } from '../buildspec/runner/postgres/names';
import { makeWorkDir, type LocalCluster } from '../local/cluster';

const DAMAGED_TEMPLATE = 'damaged template';
let source: LocalCluster;
let target: LocalCluster;
let workDir: string;
let expected: { digest: Record<string, string>; schema: string; properties: string };
let stampCounter = 0;
const lines: string[] = [];

function options(strategy: 'swap' | 'replace', extra: Partial<CopyOptions> = {}): CopyOptions {
  stampCounter += 1;
  return {
    databases: [ODD_DATABASE], strategy, jobs: 2, stamp: `2026010100${String(stampCounter).padStart(4, '0')}`, workDir, log: new StepLog((l) => lines.push(l)), ...extra,
  };
}

/** The original: the dataset after the damage, owned by app_owner as on the source. */
async function resetOriginal(): Promise<void> {
  for (const name of await databasesLike(target, '%pitr%')) await target.sql(`DROP DATABASE "${name.replace(/"/g, '""')}" WITH (FORCE)`);
  await target.sql(`DROP DATABASE IF EXISTS "${ODD_DATABASE.replace(/"/g, '""')}" WITH (FORCE)`);
  await target.sql(`CREATE DATABASE "${ODD_DATABASE.replace(/"/g, '""')}" OWNER app_owner TEMPLATE "${DAMAGED_TEMPLATE}"`);
}

async function expectEqualToSource(database: string): Promise<void> {
  expect(await contentDigest(target, database)).toEqual(expected.digest);
  expect(await schemaDump(target, database)).toEqual(expected.schema);
  expect(await databaseProperties(target, database)).toEqual(expected.properties);
}

beforeAll(async () => {
  [source, target] = await startSourceAndTarget();
  workDir = await makeWorkDir('pitr-copy-test-');
  await Promise.all([loadDataset(source, ODD_DATABASE), loadDataset(target, DAMAGED_TEMPLATE, { damage: true })]);
  expected = {
    digest: await contentDigest(source, ODD_DATABASE),
    schema: await schemaDump(source, ODD_DATABASE),
    properties: await databaseProperties(source, ODD_DATABASE),
  };
});

afterAll(async () => {
  await Promise.all([source?.destroy(), target?.destroy()]);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

beforeEach(async () => {
  lines.length = 0;
  await resetOriginal();
});

test('the damaged original differs from the point-in-time copy (the tests below can fail)', async () => {
  expect(await contentDigest(target, ODD_DATABASE)).not.toEqual(expected.digest);
  expect(await schemaDump(target, ODD_DATABASE)).not.toEqual(expected.schema);
});

test('swap: the original equals the point-in-time copy, the pre-recovery database keeps the writes made after T', async () => {
  const damaged = await contentDigest(target, ODD_DATABASE);
  const opts = options('swap');
  const [result] = await new PgDataPath().copy(masterTarget(source), masterTarget(target), opts);

  const kept = keptName(ODD_DATABASE, opts.stamp);
  expect(result).toMatchObject({ database: ODD_DATABASE, keptAs: kept, verified: true, tables: 11 });
  expect(result.rows).toBeGreaterThan(29_000);
  await expectEqualToSource(ODD_DATABASE);
  // Objects created after T are gone, objects dropped after T are back, deleted rows are back.
  expect(await target.sql("SELECT to_regclass('app.created_after_t') IS NULL, to_regclass('\"Mixed Schema\".\"Audit Log\"') IS NOT NULL", ODD_DATABASE)).toBe('t|t');
  expect(await target.sql('SELECT count(*) FROM app.orders WHERE id % 3 = 0', ODD_DATABASE)).toBe(await source.sql('SELECT count(*) FROM app.orders WHERE id % 3 = 0', ODD_DATABASE));
  expect(await target.sql('SELECT count(*) FROM app.orders WHERE id % 3 = 0', ODD_DATABASE)).not.toBe('0');
  // The pre-recovery database is exactly the damaged original, open for reading.
  expect(await contentDigest(target, kept)).toEqual(damaged);
  expect(await target.sql("SELECT count(*) FROM app.orders WHERE note = 'written after T'", kept)).toBe('1');
  expect(await target.sql(`SELECT datallowconn FROM pg_database WHERE datname = '${kept.replace(/'/g, "''")}'`)).toBe('t');
  expect(await databasesLike(target, '%\\_\\_pitr\\_%')).toEqual([]);
  expect(lines.join('\n')).toContain(`DROP DATABASE "${kept.replace(/"/g, '""')}"`);
  // Planner statistics on every table that holds data: pg_dump leaves them out (from 18 it can carry them with
  // --statistics, off by default), so the copy's ANALYZE is what gives them, on every major.
  expect(await target.sql(`SELECT string_agg(c.oid::regclass::text, ', ') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'r' AND c.relpages > 0 AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
       AND NOT EXISTS (SELECT 1 FROM pg_stats s WHERE s.schemaname = n.nspname AND s.tablename = c.relname)`, ODD_DATABASE)).toBe('');
});

test('replace, every table streamed: the original equals the point-in-time copy, nothing is kept', async () => {
  const [result] = await new PgDataPath({ streamMinBytes: 0 }).copy(masterTarget(source), masterTarget(target), options('replace'));

  expect(result).toMatchObject({ database: ODD_DATABASE, verified: true, tables: 11 });
  expect(result.keptAs).toBeUndefined();
  await expectEqualToSource(ODD_DATABASE);
  expect(lines.join('\n')).toContain('11 table(s) streamed');
  expect(await databasesLike(target, '%pitr%')).toEqual([]);
});

test('swap of a database dropped after T: it comes back under its name', async () => {
  await target.sql(`DROP DATABASE "${ODD_DATABASE.replace(/"/g, '""')}" WITH (FORCE)`);
  const [result] = await new PgDataPath({ streamMinBytes: 0 }).copy(masterTarget(source), masterTarget(target), options('swap'));

  expect(result.keptAs).toBeUndefined();
  expect(result.unavailableMs).toBe(0);
  await expectEqualToSource(ODD_DATABASE);
  expect(await databasesLike(target, '%pitr%')).toEqual([]);
});

describe('copy CLI', () => {
  const run = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCopyCli(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
    return { code, out: out.join('\n'), err: err.join('\n') };
  };
  const secretForms = [MASTER.password, encodeURIComponent(MASTER.password)];

  test('copies, exits 0, and never prints the password', async () => {
    const { code, out, err } = await run([
      '--source', masterUri(source), '--target', masterUri(target), '--database', ODD_DATABASE, '--jobs', '2', '--work-dir', workDir,
    ]);
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out).toContain('copy OK');
    expect(out).toMatch(/> .*dump schema and small tables/);
    expect(out).toMatch(/< .*verify .*: done in /);
    for (const secret of secretForms) expect(out).not.toContain(secret);
    await expectEqualToSource(ODD_DATABASE);
  });

  test('a failed copy exits 1, names the cause, changes nothing and never prints the password', async () => {
    const before = await contentDigest(target, ODD_DATABASE);
    const conninfo = `host=${target.host} port=${target.port} user=${MASTER.username} password='${MASTER.password}' sslmode=disable`;
    const { code, out, err } = await run(['--source', masterUri(source), '--target', conninfo, '--database', 'no such db', '--work-dir', workDir]);
    expect(code).toBe(1);
    expect(err).toContain('"no such db" does not exist on the point-in-time copy');
    expect(err).toContain('Nothing was written to the original');
    for (const secret of secretForms) expect(`${out}\n${err}`).not.toContain(secret);
    expect(await contentDigest(target, ODD_DATABASE)).toEqual(before);
  });

  test.each([
    [['--target', 'postgresql://u@h/postgres', '--database', 'x'], '--source is required'],
    [['--source', 'postgresql://u@h/postgres', '--target', 'postgresql://u@h/postgres'], '--database is required'],
    [['--source', 'postgresql://u@h/p', '--target', 'postgresql://u@h/p', '--database', 'x', '--jobs', '0'], '--jobs: "0" is not a number of parallel jobs; accepted: an integer from 1 to 64'],
    [['--source', 'postgresql://u@h/p', '--target', 'postgresql://u@h/p', '--database', 'x', '--strategy', 'overwrite'], '--strategy: "overwrite" is not a strategy; accepted: swap | replace'],
    [['--source', 'postgresql://u@h/p', '--target', 'postgresql://u@h/p', '--database', 'template0'], '--database: "template0" is not a database that can be recovered'],
    [['--source', 'postgresql://u@h/p', '--target', 'postgresql://u@h/p', '--database', 'x', '--database', 'x'], '--database: "x" is given twice'],
    [['--source', 'postgresql://u@h/p?sslmode=sometimes', '--target', 'postgresql://u@h/p', '--database', 'x'], '--source: "postgresql://u@h/p?sslmode=sometimes" has sslmode "sometimes" (accepted: disable | allow | prefer | require | verify-ca | verify-full)'],
    [['--source', 'mysql://u@h/p', '--target', 'postgresql://u@h/p', '--database', 'x'], '--source: "mysql://u@h/p" is neither a URI nor a conninfo string; accepted: a libpq URI'],
    [['--source', 'postgresql://u@h/p', '--target', 'postgresql://u@h/p', '--database', 'x', '--force'], '"--force" is not an option of copy'],
  ])('bad arguments %j: exit 64, the message names the flag, the value and the accepted form', async (argv, message) => {
    const { code, err } = await run(argv);
    expect(code).toBe(64);
    expect(err).toContain(message);
    expect(err).toContain('Nothing was changed.');
  });

  test('a bad argument carrying a password does not print it, and nothing is created on the target', async () => {
    const before = await databasesLike(target, '%');
    const uri = masterUri(target).replace('sslmode=verify-full', 'sslmode=bogus');
    const { code, err } = await run(['--source', masterUri(source), '--target', uri, '--database', ODD_DATABASE]);
    expect(code).toBe(64);
    expect(err).toContain('--target: ');
    expect(err).toContain(':********@');
    for (const secret of secretForms) expect(err).not.toContain(secret);
    expect(await databasesLike(target, '%')).toEqual(before);
  });
});

describe.each(['swap', 'replace'] as const)('%s of the maintenance database itself ("postgres", in the default list on RDS)', (strategy) => {
  beforeEach(async () => {
    // As on RDS, the master user owns "postgres"; a table there differs between the copy and the original.
    for (const cluster of [source, target]) {
      await cluster.sql(`ALTER DATABASE postgres OWNER TO ${MASTER.username}`);
      await cluster.sql(`DROP TABLE IF EXISTS public.admin_notes; CREATE TABLE public.admin_notes (note text); ALTER TABLE public.admin_notes OWNER TO ${MASTER.username}`);
    }
    await source.sql("INSERT INTO public.admin_notes VALUES ('at T')");
    await target.sql("INSERT INTO public.admin_notes VALUES ('after T')");
  });

  test('comes back as at T, and the original is reachable afterwards', async () => {
    const [result] = await new PgDataPath().copy(masterTarget(source), masterTarget(target), options(strategy, { databases: ['postgres'] }));

    expect(result).toMatchObject({ database: 'postgres', verified: true });
    expect(await target.sql('SELECT note FROM public.admin_notes')).toBe('at T');
    expect(await databasesLike(target, '%pitr%')).toEqual(strategy === 'swap' ? [keptName('postgres', `2026010100${String(stampCounter).padStart(4, '0')}`)] : []);
  });
});
