/**
 * The data path on the production route: the point-in-time copy on another
 * host than the original (127.0.0.2 and 127.0.0.1), so tables stream COPY to
 * COPY; both servers with TLS, connected with verify-full through the test
 * CA; and a database whose database-level and role-level settings change how
 * values print and parse. Every type PostgreSQL users keep data in goes
 * through both COPY formats, under both strategies, and the result is
 * compared with the point-in-time copy independently of the runner.
 */
import { rmSync } from 'node:fs';
import { MASTER, contentDigest, databaseProperties, databasesLike, masterTarget, schemaDump, startCluster, startSourceAndTarget, testCa } from './pg-test-env';
import { StepLog } from '../buildspec/runner/log';
import type { CopyOptions } from '../buildspec/runner/ports';
import { PgDataPath } from '../buildspec/runner/postgres/data-path';
import { LOOPBACK, makeWorkDir, quoteIdent, type LocalCluster } from '../local/cluster';
import { TestCa } from '../local/test-ca';

const DB = 'Formats ü';
let source: LocalCluster;
let target: LocalCluster;
let workDir: string;
let stampCounter = 0;
let lines: string[] = [];

function options(databases: string[], strategy: 'swap' | 'replace', extra: Partial<CopyOptions> = {}): CopyOptions {
  stampCounter += 1;
  lines = [];
  return {
    databases, strategy, jobs: 2, stamp: `2026030300${String(stampCounter).padStart(4, '0')}`, workDir, log: new StepLog((l) => lines.push(l)), ...extra,
  };
}

/**
 * Settings that change how values print or parse, at every level a user can
 * set them: database (`ALTER DATABASE`), role in database, and role. On the
 * target, roles are shared with the original, so the role-level ones apply
 * there too; the new database gets the database-level ones only after
 * verification, as the runner applies them then.
 */
function formatSettings(database: string): string {
  const db = quoteIdent(database);
  return [
    `ALTER DATABASE ${db} SET extra_float_digits = 0`,
    `ALTER DATABASE ${db} SET DateStyle = 'SQL, DMY'`,
    `ALTER DATABASE ${db} SET bytea_output = 'escape'`,
    `ALTER DATABASE ${db} SET search_path = app, public`,
    `ALTER DATABASE ${db} SET standard_conforming_strings = off`,
    `ALTER DATABASE ${db} SET xmloption = document`,
    `ALTER ROLE ${MASTER.username} IN DATABASE ${db} SET TimeZone = 'Pacific/Chatham'`,
  ].join('; ');
}
const ROLE_SETTINGS = `ALTER ROLE ${MASTER.username} SET IntervalStyle = 'sql_standard'`;

/** Two tables with the same kinds of values: `builtin` (binary COPY) and `typed` (user-defined types: text COPY). */
const SCHEMA = `
  CREATE EXTENSION hstore;
  CREATE EXTENSION citext;
  CREATE SCHEMA app AUTHORIZATION ${MASTER.username};
  SET ROLE ${MASTER.username};
  CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
  CREATE DOMAIN app.code AS text CHECK (VALUE ~ '^[A-Z]{3}$');
  CREATE TYPE app.pair AS (label text, weight float8);
  CREATE TABLE app.items (id int PRIMARY KEY);
  CREATE TABLE app.builtin (
    id int PRIMARY KEY, f4 float4, f8 float8, n numeric, m money, iv interval, d date, t time, tz timetz, ts timestamp, tstz timestamptz,
    b bytea, ia int[], ta text[], j json, jb jsonb, x xml, r int4range, mr int4multirange, o oid, tx text, gone int,
    doubled float8 GENERATED ALWAYS AS (f8 * 2) STORED
  );
  CREATE TABLE app.typed (
    id int PRIMARY KEY, mood app.mood, code app.code, pair app.pair, h hstore, ci citext, rc regclass, rt regtype, rp regproc,
    f8 float8, d date, iv interval, m money, x xml, moods app.mood[]
  );
  ALTER TABLE app.builtin DROP COLUMN gone;
`;

/**
 * Values chosen to break under the settings above: floats needing 17 digits,
 * days above 12, mixed-sign intervals, BC, infinities, fragments. (An XML
 * declaration that says only `version="1.0"` is not kept by any COPY or by
 * pg_dump: xml's output function omits it. So the document here carries
 * `standalone`, which is kept.)
 */
const DATA = `
  SET ROLE ${MASTER.username};
  SET search_path = '';
  INSERT INTO app.items SELECT generate_series(1, 5);
  INSERT INTO app.builtin (id, f4, f8, n, m, iv, d, t, tz, ts, tstz, b, ia, ta, j, jb, x, r, mr, o, tx)
  SELECT g, (g / 3.0)::float4, g / 3.0::float8 + 1e-12 * g, (g / 7.0)::numeric(30, 20), (g * 1234.56)::money,
         make_interval(years => -(g % 3), months => g % 11, days => -(g % 5), secs => g * 1.5),
         DATE '2020-01-13' + g, TIME '13:14:15.123456' + make_interval(secs => g), '23:59:59.5+05:45'::timetz,
         TIMESTAMP '2021-12-31 23:00:00.654321' + make_interval(mins => g), TIMESTAMPTZ '2021-03-28 01:30:00+00' + make_interval(hours => g),
         decode(lpad(to_hex(g), 8, '0') || '00ff5c27', 'hex'), ARRAY[g, -g, NULL], ARRAY['a,b', 'c"d', E'e\\\\f', NULL, ''],
         json_build_object('v', g / 3.0::float8, 's', E'tab\\there'), jsonb_build_object('n', g, 'a', ARRAY[1.5, 2.25]),
         XMLPARSE(CONTENT 'text <b>' || g || '</b> tail'), int4range(g, g + 10), int4multirange(int4range(1, g + 2), int4range(g + 5, g + 9)),
         (g * 1000)::oid, E'line\\nbreak \\\\ back\\\\slash ' || repeat('x', g % 50)
    FROM generate_series(1, 3000) g;
  INSERT INTO app.builtin (id, f4, f8, n, iv, d, ts, tstz, x) VALUES
    (-1, 'NaN', '-Infinity', 'NaN', '-1 days +02:03:04', '4713-01-01 BC', '-infinity', 'infinity', XMLPARSE(CONTENT 'a<b/>c')),
    (-2, '-0', '2.2250738585072014e-308', 'Infinity', '1 year -1 month', 'infinity', '0044-03-15 12:00:00 BC', '1999-12-31 23:59:59.999999+14', NULL),
    (-3, '1e-45', '4.9e-324', '-Infinity', '-178000000 years', '-infinity', 'infinity', '-infinity', XMLPARSE(DOCUMENT '<?xml version="1.0" standalone="yes"?><r/>'));
  INSERT INTO app.typed (id, mood, code, pair, h, ci, rc, rt, rp, f8, d, iv, m, x, moods)
  SELECT g, (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::app.mood, chr(65 + g % 26) || 'BC', ROW('w' || g, g / 3.0::float8)::app.pair,
         public.hstore(ARRAY['k', 'q"uote'], ARRAY[g::text, NULL]), 'MiXeD ' || g, 'app.items'::regclass, 'app.pair'::regtype, 'pg_catalog.now'::regproc,
         g / 7.0::float8, DATE '2020-01-13' + g, make_interval(months => g % 14, days => -(g % 9), hours => g % 30), (g * 0.01)::money,
         XMLPARSE(CONTENT 'x' || g || '<y/>'), ARRAY['happy', 'sad']::app.mood[]
    FROM generate_series(1, 3000) g;
`;

/** Builds `database` on `cluster` as the point-in-time copy holds it. */
async function createFormatsDatabase(cluster: LocalCluster, database: string, data = DATA): Promise<void> {
  await cluster.sql(`CREATE DATABASE ${quoteIdent(database)} OWNER ${MASTER.username}`);
  await cluster.sql(SCHEMA, database);
  await cluster.sql(data, database);
  await cluster.sql(formatSettings(database));
}

async function expectEqualToSource(database: string): Promise<void> {
  expect(await contentDigest(target, database)).toEqual(await contentDigest(source, database));
  expect(await schemaDump(target, database)).toEqual(await schemaDump(source, database));
  expect(await databaseProperties(target, database)).toEqual(await databaseProperties(source, database));
}

beforeAll(async () => {
  [source, target] = await startSourceAndTarget();
  workDir = await makeWorkDir('pitr-production-route-');
  await Promise.all([source.sql(ROLE_SETTINGS), target.sql(ROLE_SETTINGS)]);
  await createFormatsDatabase(source, DB);
});

afterAll(async () => {
  await Promise.all([source?.destroy(), target?.destroy()]);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

beforeEach(async () => {
  for (const name of await databasesLike(target, '%')) {
    if (!['postgres', 'template0', 'template1'].includes(name)) await target.sql(`DROP DATABASE ${quoteIdent(name)} WITH (FORCE)`);
  }
  // The original: the same database, damaged after T.
  await target.sql(`CREATE DATABASE ${quoteIdent(DB)} OWNER ${MASTER.username}`);
  await target.sql(`CREATE SCHEMA app AUTHORIZATION ${MASTER.username}; CREATE TABLE app.builtin (id int); INSERT INTO app.builtin VALUES (1)`, DB);
});

test('the route under test: two hosts, TLS verify-full on both, settings that change formats in force', async () => {
  expect(source.host).not.toBe(target.host);
  for (const cluster of [source, target]) {
    expect(masterTarget(cluster)).toMatchObject({ sslMode: 'verify-full', sslRootCert: (await testCa()).caFile });
  }
  // What any session in the copied database starts with, unless it says otherwise.
  expect(await source.sql("SELECT current_setting('extra_float_digits') || '|' || current_setting('DateStyle') || '|' || current_setting('xmloption')", DB))
    .toBe('0|SQL, DMY|document');
  expect(await source.sql(`SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = '${DB}'`)).toBe('2');
});

describe.each(['swap', 'replace'] as const)('%s, every table streamed', (strategy) => {
  test('the original equals the point-in-time copy: every type, text and binary COPY, whatever the settings', async () => {
    const [result] = await new PgDataPath({ streamMinBytes: 0 }).copy(masterTarget(source), masterTarget(target), options([DB], strategy));

    expect(result).toMatchObject({ database: DB, verified: true, tables: 3 });
    const log = lines.join('\n');
    // Both formats were used: builtin and items in binary, typed (user types, reg*) in text.
    expect(log).toContain('3 table(s) streamed');
    expect(log).toContain('2 in binary, 1 in text COPY');
    expect(log).toContain('row counts + content checksums');
    await expectEqualToSource(DB);
    // Spot checks a digest could not explain: exact floats, a day above 12, a BC date, a content fragment.
    const probe = "SET extra_float_digits = 3; SET DateStyle = 'ISO, YMD'; SELECT f8::text || '|' || d::text || '|' || coalesce(x::text, '') FROM app.builtin WHERE id IN (1, -1) ORDER BY id";
    expect(await target.sql(probe, DB)).toBe(await source.sql(probe, DB));
    expect(await target.sql("SET DateStyle = 'ISO, YMD'; SELECT d FROM app.typed WHERE id = 1", DB)).toBe('2020-01-14');
  });
});

test('issue #7, failure 1: a large streamed table of floats with extra_float_digits = 0 at database level keeps every digit', async () => {
  const big = 'floats big';
  // About 70 MiB: above the size that used to get row counts only.
  await createFormatsDatabase(source, big, `
    SET ROLE ${MASTER.username};
    CREATE TABLE app.measure (id bigint, mood app.mood, v float8, pad text);
    INSERT INTO app.measure SELECT g, 'ok', g / 3.0::float8 + 1, repeat('p', 80) FROM generate_series(1, 550000) g;`);
  try {
    expect(Number(await source.sql("SELECT pg_table_size('app.measure')", big))).toBeGreaterThan(64 * 1024 * 1024);
    await target.sql(`CREATE DATABASE ${quoteIdent(big)} OWNER ${MASTER.username}`);
    await new PgDataPath({ streamMinBytes: 1024 * 1024 }).copy(masterTarget(source), masterTarget(target), options([big], 'swap'));

    const exact = 'SET extra_float_digits = 3; SELECT v FROM app.measure WHERE id = 1';
    expect(await target.sql(exact, big)).toBe('1.3333333333333333');
    expect(await contentDigest(target, big)).toEqual(await contentDigest(source, big));
    const log = lines.join('\n');
    expect(log).toMatch(/1 in text COPY/);
    expect(log).toContain('4 tables (550000 rows): row counts + content checksums');
  } finally {
    await source.sql(`DROP DATABASE ${quoteIdent(big)} WITH (FORCE)`);
  }
});

test('issue #7, failure 2: dates printed under DateStyle SQL, DMY stream into the original (replace does not fail half-way)', async () => {
  const db = 'dates dmy';
  await createFormatsDatabase(source, db, `
    SET ROLE ${MASTER.username};
    CREATE TABLE app.events (id int, mood app.mood, at date);
    INSERT INTO app.events SELECT g, 'sad', DATE '2020-01-13' + g FROM generate_series(0, 999) g;`);
  try {
    expect(await source.sql('SELECT at FROM app.events WHERE id = 0', db)).toBe('13/01/2020');
    await target.sql(`CREATE DATABASE ${quoteIdent(db)} OWNER ${MASTER.username}`);
    const [result] = await new PgDataPath({ streamMinBytes: 0 }).copy(masterTarget(source), masterTarget(target), options([db], 'replace'));
    expect(result.verified).toBe(true);
    expect(await contentDigest(target, db)).toEqual(await contentDigest(source, db));
  } finally {
    await source.sql(`DROP DATABASE ${quoteIdent(db)} WITH (FORCE)`);
  }
});

test('key constraints of every kind on streamed tables: built side by side, the schema identical to the point-in-time copy', async () => {
  const db = 'keys';
  // Plain primary keys and unique constraints go the unique-index route; the others (clustered, replica identity,
  // deferrable, descending, exclusion) keep pg_dump's own statement. Names must come out the same either way.
  await createFormatsDatabase(source, db, `
    SET ROLE ${MASTER.username};
    CREATE TABLE app.plain (id bigint PRIMARY KEY, a int, b int, c text, CONSTRAINT "plain a b" UNIQUE NULLS NOT DISTINCT (a, b) INCLUDE (c));
    CREATE INDEX plain_c ON app.plain (c);
    COMMENT ON CONSTRAINT "plain a b" ON app.plain IS 'pair';
    CREATE TABLE app.clustered (id int, u int, CONSTRAINT clustered_key PRIMARY KEY (id), CONSTRAINT clustered_u UNIQUE (u) DEFERRABLE INITIALLY DEFERRED);
    CLUSTER app.clustered USING clustered_key;
    CREATE TABLE app.ident (id int PRIMARY KEY, u int NOT NULL, r int4range, CONSTRAINT ident_u UNIQUE (u), EXCLUDE USING gist (r WITH &&));
    ALTER TABLE app.ident REPLICA IDENTITY USING INDEX ident_u;
    CREATE TABLE app.descending (id int, CONSTRAINT descending_pkey PRIMARY KEY (id));
    ALTER INDEX app.descending_pkey RENAME TO "descending key renamed";
    INSERT INTO app.plain SELECT g, g % 100, g / 100, 'c' || g FROM generate_series(1, 5000) g;
    INSERT INTO app.clustered SELECT g, -g FROM generate_series(1, 2000) g;
    INSERT INTO app.ident SELECT g, g, int4range(g * 10, g * 10 + 5) FROM generate_series(1, 2000) g;
    INSERT INTO app.descending SELECT generate_series(1, 100);`);
  try {
    await target.sql(`CREATE DATABASE ${quoteIdent(db)} OWNER ${MASTER.username}`);
    const [result] = await new PgDataPath({ streamMinBytes: 0 }).copy(masterTarget(source), masterTarget(target), options([db], 'swap'));
    expect(result.verified).toBe(true);
    expect(await schemaDump(target, db)).toEqual(await schemaDump(source, db));
    expect(await contentDigest(target, db)).toEqual(await contentDigest(source, db));
    const indexes = "SELECT string_agg(indexrelid::regclass || ':' || indisprimary || indisunique || indisclustered || indisreplident || indimmediate, ' ' ORDER BY indexrelid::regclass::text) FROM pg_index WHERE indrelid::regclass::text LIKE 'app.%'";
    expect(await target.sql(indexes, db)).toBe(await source.sql(indexes, db));
  } finally {
    await source.sql(`DROP DATABASE ${quoteIdent(db)} WITH (FORCE)`);
  }
});

describe('TLS verify-full', () => {
  test('a CA the server certificate does not chain to: refused, naming the host and the CA file; nothing written', async () => {
    const other = await TestCa.create('some other CA');
    try {
      const wrong = { ...masterTarget(target), sslRootCert: other.caFile };
      const error = await new PgDataPath().copy(masterTarget(source), wrong, options([DB], 'replace')).then(() => undefined, (err: Error) => err);
      expect(error?.message).toContain(`${target.host}:${target.port}`);
      expect(error?.message).toContain(other.caFile);
      expect(error?.message).toMatch(/certificate/i);
      expect(await databasesLike(target, '%pitr%')).toEqual([]);
      expect(await target.sql('SELECT count(*) FROM app.builtin', DB)).toBe('1');
    } finally {
      other.destroy();
    }
  });

  test('a certificate for another host name: refused, naming the host; nothing written', async () => {
    // A server whose certificate names 127.0.0.9 only, reached as 127.0.0.1.
    const ca = await testCa();
    const impostor = await startCluster(LOOPBACK, ['127.0.0.9']);
    try {
      const error = await new PgDataPath().copy(masterTarget(source), masterTarget(impostor), options([DB], 'swap')).then(() => undefined, (err: Error) => err);
      expect(error?.message).toContain(`${impostor.host}:${impostor.port}`);
      expect(error?.message).toContain('127.0.0.9');
      expect(error?.message).toContain(ca.caFile);
      expect(await databasesLike(impostor, '%pitr%')).toEqual([]);
    } finally {
      await impostor.destroy();
    }
  });
});
