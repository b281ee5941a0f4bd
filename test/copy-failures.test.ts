/**
 * The data path when something goes wrong, on real PostgreSQL. In every case
 * the copy throws an error naming the cause, no half-made `__pitr_` database
 * is left, and under `swap` the original is exactly as it was (compared by
 * content digests taken before and after).
 */
import { rmSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { MASTER, ODD_DATABASE, contentDigest, databaseExists, databasesLike, loadDataset, masterTarget, startSourceAndTarget } from './pg-test-env';
import { StepLog } from '../buildspec/runner/log';
import type { CopyOptions } from '../buildspec/runner/ports';
import { PgDataPath, type PgDataPathSettings } from '../buildspec/runner/postgres/data-path';
import { connect } from '../buildspec/runner/postgres/process';
import { CopyChecksum, copyChecksum, copyOutSql, type CopiedTable } from '../buildspec/runner/postgres/verify';
import { makeWorkDir, type LocalCluster } from '../local/cluster';

const q = (name: string): string => `"${name.replace(/"/g, '""')}"`;
let source: LocalCluster;
let target: LocalCluster;
let workDir: string;
let stampCounter = 0;

function options(database: string, strategy: 'swap' | 'replace' = 'swap', extra: Partial<CopyOptions> = {}): CopyOptions {
  stampCounter += 1;
  return { databases: [database], strategy, jobs: 2, stamp: `2026020200${String(stampCounter).padStart(4, '0')}`, workDir, log: new StepLog(() => undefined), ...extra };
}

/**
 * A scenario: `database` on the source is the dataset plus `tweak` (run as the
 * superuser), and on the target the damaged dataset, owned by app_owner.
 */
async function scenario(database: string, tweak: string): Promise<Record<string, string>> {
  await source.sql(`CREATE DATABASE ${q(database)} OWNER app_owner TEMPLATE ${q(ODD_DATABASE)}`);
  if (tweak) await source.sql(tweak, database);
  await target.sql(`CREATE DATABASE ${q(database)} OWNER app_owner TEMPLATE ${q(ODD_DATABASE)}`);
  return contentDigest(target, database);
}

async function copyFails(database: string, settings: PgDataPathSettings = {}, extra: Partial<CopyOptions> = {}, strategy: 'swap' | 'replace' = 'swap'): Promise<string> {
  const error = await new PgDataPath(settings).copy(masterTarget(source), masterTarget(target), options(database, strategy, extra)).then(
    () => undefined,
    (err: Error) => err,
  );
  expect(error).toBeInstanceOf(Error);
  return error!.message;
}

beforeAll(async () => {
  [source, target] = await startSourceAndTarget();
  workDir = await makeWorkDir('pitr-copy-fail-');
  // Source: the dataset (the point-in-time copy). Target: the dataset after the damage (the original).
  await Promise.all([loadDataset(source, ODD_DATABASE), loadDataset(target, ODD_DATABASE, { damage: true })]);
  await Promise.all([source.sql('CREATE ROLE stranger NOLOGIN'), target.sql('CREATE ROLE stranger NOLOGIN'), source.sql('CREATE ROLE only_on_copy NOLOGIN')]);
});

afterAll(async () => {
  await Promise.all([source?.destroy(), target?.destroy()]);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

afterEach(async () => {
  expect(await databasesLike(target, '%\\_\\_pitr\\_%')).toEqual([]);
});

test('a role the dump references is missing on the original: stop before writing, list it', async () => {
  const before = await databasesLike(target, '%');
  await source.sql('CREATE DATABASE "roles missing" OWNER app_owner');
  await source.sql(`CREATE TABLE t (id int); ALTER TABLE t OWNER TO only_on_copy; GRANT only_on_copy TO ${MASTER.username}; GRANT SELECT ON t TO stranger`, 'roles missing');
  const message = await copyFails('roles missing');
  expect(message).toContain('references roles that do not exist on the original');
  expect(message).toContain('"only_on_copy"');
  expect(message).not.toContain('"stranger"');
  expect(message).toContain('Nothing was written to the original');
  expect(await databasesLike(target, '%')).toEqual(before);
});

test('the master user cannot act as an owner role: stop before writing, with the GRANT to run', async () => {
  const before = await databasesLike(target, '%');
  await source.sql('CREATE DATABASE "not a member" OWNER app_owner');
  await source.sql(`CREATE TABLE t (id int); ALTER TABLE t OWNER TO stranger; GRANT stranger TO ${MASTER.username}`, 'not a member');
  const message = await copyFails('not a member');
  expect(message).toContain(`GRANT "stranger" TO "${MASTER.username}";`);
  expect(message).toContain('Nothing was written to the original');
  expect(await databasesLike(target, '%')).toEqual(before);
});

test('settings for a role the master user holds without ADMIN OPTION: refused before writing from PostgreSQL 16, copied on 15', async () => {
  const before = await databasesLike(target, '%');
  // "stranger" was created by the superuser, as on RDS a role created by another CREATEROLE user: the master has no ADMIN OPTION on it.
  await source.sql('CREATE DATABASE "role settings" OWNER app_owner');
  await source.sql('ALTER ROLE stranger IN DATABASE "role settings" SET work_mem TO \'1MB\'');
  const major = Math.floor(Number(await target.sql("SELECT current_setting('server_version_num')")) / 10000);
  if (major >= 16) {
    const message = await copyFails('role settings');
    expect(message).toContain('database "role settings" has settings for role(s) "stranger" (ALTER ROLE ... IN DATABASE ... SET)');
    expect(message).toContain(`GRANT "stranger" TO "${MASTER.username}" WITH ADMIN OPTION;`);
    expect(message).toContain('Nothing was written to the original');
    expect(await databasesLike(target, '%')).toEqual(before);
  } else {
    // PostgreSQL 15: CREATEROLE may alter any non-superuser role.
    await new PgDataPath({}).copy(masterTarget(source), masterTarget(target), options('role settings'));
    expect(await target.sql("SELECT setconfig::text FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'role settings' AND s.setrole = 'stranger'::regrole"))
      .toBe('{work_mem=1MB}');
    await target.sql('DROP DATABASE "role settings"');
  }
});

test('objects owned by a superuser: stop before writing, say that a non-superuser cannot restore them', async () => {
  const before = await databasesLike(target, '%');
  // The local cluster's own `postgres` database is owned by the superuser `postgres`.
  const message = await copyFails('postgres');
  expect(message).toContain('owned by the superuser role(s) "postgres"');
  expect(message).toContain('Nothing was written to the original');
  expect(await databasesLike(target, '%')).toEqual(before);
});

test('the database does not exist on the point-in-time copy: stop, list what exists', async () => {
  const message = await copyFails('nowhere');
  expect(message).toContain('"nowhere" does not exist on the point-in-time copy');
  expect(message).toContain(JSON.stringify(ODD_DATABASE));
});

test('the dump fails (a table pg_dump may not read in full): the original is untouched', async () => {
  const before = await scenario('dump fails', 'ALTER TABLE app.tenant_notes FORCE ROW LEVEL SECURITY');
  const message = await copyFails('dump fails');
  expect(message).toMatch(/pg_dump exited with status 1: .*row-level security/s);
  expect(message).toContain('"dump fails" on the original was not changed');
  expect(await contentDigest(target, 'dump fails')).toEqual(before);
});

test('the restore fails halfway (an object the master user may not create): the half-made database is dropped, the original untouched', async () => {
  const before = await scenario('restore fails', "CREATE FUNCTION app.internal_len(text) RETURNS int LANGUAGE internal IMMUTABLE STRICT AS 'textlen'; ALTER FUNCTION app.internal_len(text) OWNER TO app_owner");
  const message = await copyFails('restore fails');
  expect(message).toMatch(/pg_restore exited with status 1: .*language internal/s);
  expect(message).toContain('"restore fails__pitr_2026020200');
  expect(message).toContain('was dropped');
  expect(message).toContain('"restore fails" on the original was not changed');
  expect(await contentDigest(target, 'restore fails')).toEqual(before);
});

test('verification finds a mismatch: fail naming the table and both values, before the swap', async () => {
  const before = await scenario('tampered', '');
  const message = await copyFails('tampered', {
    beforeVerify: async (_db, restoredAs) => {
      await target.sql('DELETE FROM app.orders WHERE id <= 5; UPDATE app.customers SET name = \'tampered\' WHERE id = 1', restoredAs);
    },
  });
  expect(message).toContain('verification failed');
  expect(message).toMatch(/table "app"\."orders": point-in-time copy has 20000\/\d+, restored has 19995\/\d+/);
  expect(message).toMatch(/table "app"\."customers": point-in-time copy has 500\/(\d+), restored has 500\/(?!\1)\d+/);
  expect(message).toContain('"tampered" on the original was not changed');
  expect(await contentDigest(target, 'tampered')).toEqual(before);
});

test('verification finds a mismatch with every table streamed (checksums taken as the data comes in): fail before the swap', async () => {
  const before = await scenario('tampered streamed', '');
  const message = await copyFails('tampered streamed', {
    streamMinBytes: 0,
    beforeVerify: async (_db, restoredAs) => {
      await target.sql('UPDATE app.orders SET note = \'tampered\' WHERE id = 7', restoredAs);
    },
  });
  expect(message).toContain('verification failed');
  expect(message).toMatch(/table "app"\."orders": point-in-time copy has 20000\/(-?\d+), restored has 20000\/(?!\1)-?\d+/);
  expect(message).toContain('"tampered streamed" on the original was not changed');
  expect(await contentDigest(target, 'tampered streamed')).toEqual(before);
});

test('verification mismatch under replace: the original stays dropped and the message says how to get it back', async () => {
  await scenario('replaced', '');
  const message = await copyFails('replaced', {
    beforeVerify: async (_db, restoredAs) => {
      await target.sql('DELETE FROM app.vehicles', restoredAs);
    },
  }, {}, 'replace');
  expect(message).toMatch(/table "app"\."vehicles": point-in-time copy has 2\/\d+, restored has 0\/0/);
  expect(message).toContain('was dropped on the original; restore it from the pre-recovery safety snapshot');
  expect(await databaseExists(target, 'replaced')).toBe(false);
});

test('abort (SIGTERM) while the data is being copied: children killed, half-made database dropped, original untouched', async () => {
  const before = await scenario('aborted', '');
  const controller = new AbortController();
  const log = new StepLog((line) => {
    if (/> .*copy data/.test(line)) controller.abort(new Error('SIGTERM'));
  });
  const message = await copyFails('aborted', { streamMinBytes: 0 }, { signal: controller.signal, log });
  expect(message).toContain('copy aborted (SIGTERM)');
  expect(message).toContain('"aborted" on the original was not changed');
  expect(await contentDigest(target, 'aborted')).toEqual(before);
});

test('a streamed table is verified against the checksum of its own COPY stream: one changed value (same row count) fails before the swap', async () => {
  const before = await scenario('tampered in flight', '');
  const scans = async (): Promise<number> => Number(await source.sql("SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'app.customers'::regclass", 'tampered in flight'));
  const scansBefore = await scans();
  const message = await copyFails('tampered in flight', {
    streamMinBytes: 0,
    beforeVerify: async (_db, restoredAs) => {
      await target.sql('UPDATE app.customers SET name = name || \'.\' WHERE id = 3', restoredAs);
    },
  });
  expect(message).toMatch(/table "app"\."customers": point-in-time copy has 500\/(-?\d+), restored has 500\/(?!\1)-?\d+/);
  expect(message).toContain('"tampered in flight" on the original was not changed');
  expect(await contentDigest(target, 'tampered in flight')).toEqual(before);
  // The point-in-time copy's table was read once, by the stream: its checksum, the only witness of its rows, came from the stream.
  // (Ended sessions flush their statistics as they exit: wait for the stream's scan to show, then for anything later.)
  for (let i = 0; i < 50 && await scans() === scansBefore; i++) await new Promise((resolve) => setTimeout(resolve, 100));
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect(await scans()).toBe(scansBefore + 1);
});

test('CopyChecksum: the stream\'s checksum equals copyChecksum of a table loaded from that stream; a changed value or another row order differs', async () => {
  const db = 'copy checksum';
  await source.sql(`CREATE DATABASE ${q(db)} OWNER ${q(MASTER.username)}`);
  const client = await connect(masterTarget(source), db);
  try {
    await client.query(`CREATE TABLE public.a (id int, v text, j jsonb);
      INSERT INTO public.a SELECT i, md5(i::text), jsonb_build_object('i', i) FROM generate_series(1, 5000) i;
      CREATE TABLE public.b (LIKE public.a); CREATE TABLE public.c (LIKE public.a); INSERT INTO public.c SELECT * FROM public.a ORDER BY id DESC`);
    for (const binary of [true, false]) {
      const table = (name: string): CopiedTable => ({ schema: 'public', name, columns: ['id', 'v', 'j'], binary });
      // As on the original: in a transaction of its own.
      const checksumOf = async (name: string): Promise<string> => {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
        try {
          return await copyChecksum(client, table(name), 'UTF8');
        } finally {
          await client.query('COMMIT');
        }
      };
      const streamed = new CopyChecksum();
      const reader = await connect(masterTarget(source), db);
      try {
        await client.query('TRUNCATE public.b');
        const out = reader.query(copyTo(copyOutSql(table('a'))));
        await pipeline(out, streamed.passThrough(), client.query(copyFrom(`COPY public.b FROM STDIN${binary ? ' (FORMAT binary)' : ''}`)));
        const inFlight = streamed.result(out.rowCount);
        expect(inFlight).toMatch(/^5000\/-?\d+$/);
        expect(await checksumOf('b')).toBe(inFlight);
        expect(await checksumOf('a')).toBe(inFlight);
        expect(await checksumOf('c')).not.toBe(inFlight);
        await client.query("UPDATE public.b SET v = 'x' || substr(v, 2) WHERE id = 4000");
        expect(await checksumOf('b')).not.toBe(inFlight);
        expect(await checksumOf('missing')).toBe('missing');
      } finally {
        await reader.end();
      }
    }
  } finally {
    await client.end();
  }
});
