/**
 * The two clusters and the data they hold. The source plays the
 * point-in-time copy; the target plays the original, holding a damaged
 * version of the same database. Everything is generated server-side with
 * generate_series, deterministically, so both clusters start from the same
 * rows without shipping them through a client.
 */
import { execFile } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { DatasetName, DatasetSize, Route } from './options';
import { LocalCluster, pgBin, quoteIdent, quoteLiteral, sleep } from '../buildspec/runner/local/cluster';

const execFileAsync = promisify(execFile);

/** The database every path copies. */
export const BENCH_DB = 'bench';
/** Kept on the target, never connected to: each run's target is a fresh copy of it. */
export const DAMAGED_TEMPLATE_DB = 'bench_damaged_pristine';
/** The application table the write probe inserts into; it exists at T, so it survives both paths. */
export const PROBE_TABLE = 'bench_probe';

/**
 * Identical settings on both clusters, written into every result. Durable
 * (fsync, synchronous_commit, full_page_writes on) and close to an RDS
 * instance's defaults, so no path wins by skipping work RDS would do.
 */
export const CLUSTER_SETTINGS: Readonly<Record<string, string>> = {
  fsync: 'on',
  synchronous_commit: 'on',
  full_page_writes: 'on',
  wal_level: 'replica',
  shared_buffers: '512MB',
  max_wal_size: '2GB',
  checkpoint_timeout: '5min',
  maintenance_work_mem: '64MB',
  work_mem: '4MB',
  max_parallel_maintenance_workers: '2',
  max_connections: '50',
  // Instruments, not tuning: every statement that takes 100 ms or more is logged with its duration,
  // so the report can show where each path's time goes (bench/measure.ts reads them back).
  log_min_duration_statement: '100',
  log_line_prefix: "'%n [%p] %a@%d '",
};

/** The address every cluster listens on, and the one the source is reached on in the two-hosts route. */
export const LOOPBACK = '127.0.0.1';
export const SECOND_LOOPBACK = '127.0.0.2';

/**
 * A cluster with the bench's settings. With `alsoOn`, it listens on that
 * loopback address too (pg_hba trusts it), so clients can reach it as a
 * different host. LocalCluster itself only knows 127.0.0.1, which the bench
 * keeps using for its own bookkeeping queries.
 */
export async function startCluster(alsoOn?: string): Promise<LocalCluster> {
  const settings = alsoOn ? { ...CLUSTER_SETTINGS, listen_addresses: `'${LOOPBACK},${alsoOn}'` } : CLUSTER_SETTINGS;
  const cluster = await LocalCluster.create({ settings });
  if (alsoOn) {
    appendFileSync(join(cluster.dataDir, 'pg_hba.conf'), `host all all ${alsoOn}/32 trust\n`);
    await cluster.sql('SELECT pg_reload_conf()');
    // The reload is asynchronous: wait until the second address answers, and that it is the one answering.
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const seen = await sqlVia(cluster, alsoOn, 'SELECT host(inet_server_addr())');
        if (seen === alsoOn) break;
        throw new Error(`connected to ${alsoOn} but the server saw ${seen}`);
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`cluster on port ${cluster.port} does not answer on ${alsoOn}: ${(err as Error).message}`);
        await sleep(100);
      }
    }
  }
  return cluster;
}

/** libpq URI of `cluster` reached through `host` (the superuser, trust auth). */
export function uriVia(cluster: LocalCluster, host: string, database = 'postgres'): string {
  return `postgresql://postgres@${host}:${cluster.port}/${encodeURIComponent(database)}`;
}

/** The clusters for a route: the source also on SECOND_LOOPBACK for two-hosts; the host every path reaches the source on. */
export async function startClusters(route: Route): Promise<Array<PromiseSettledResult<LocalCluster>>> {
  return Promise.allSettled([startCluster(route === 'two-hosts' ? SECOND_LOOPBACK : undefined), startCluster()]);
}

export function sourceHost(route: Route): string {
  return route === 'two-hosts' ? SECOND_LOOPBACK : LOOPBACK;
}

async function sqlVia(cluster: LocalCluster, host: string, sql: string): Promise<string> {
  const { stdout } = await execFileAsync(pgBin('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', '-d', uriVia(cluster, host), '-c', sql], {
    env: { ...process.env, PGPASSWORD: '', PGCONNECT_TIMEOUT: '5' },
  });
  return stdout.trim();
}

/** The mixed-type tables: text, jsonb, numeric, timestamps; a primary key and 2 secondary indexes each. */
function extraTableStatements(rows: number): string[] {
  const n = Math.trunc(rows);
  return [
    `CREATE TABLE bench_customers (id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL, created_at timestamptz NOT NULL, balance numeric(14,2) NOT NULL, attrs jsonb NOT NULL);
     INSERT INTO bench_customers
       SELECT i, 'customer ' || md5(i::text), 'c' || i || '@example.' || (ARRAY['com','org','net'])[1 + i % 3],
              timestamptz '2020-01-01 00:00:00+00' + i * interval '37 seconds', (i % 100000) / 7.0,
              jsonb_build_object('tier', i % 5, 'country', (ARRAY['DE','FR','US','JP','BR'])[1 + i % 5], 'marketing', i % 2 = 0)
       FROM generate_series(1, ${n}) i;
     CREATE INDEX bench_customers_email ON bench_customers (email);
     CREATE INDEX bench_customers_created_at ON bench_customers (created_at);`,
    `CREATE TABLE bench_orders (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, customer_id integer NOT NULL, placed_at timestamptz NOT NULL, status text NOT NULL, total numeric(12,2) NOT NULL, lines jsonb NOT NULL);
     INSERT INTO bench_orders (id, customer_id, placed_at, status, total, lines)
       SELECT i, 1 + (i::bigint * 7919) % ${n}, timestamptz '2021-01-01 00:00:00+00' + i * interval '13 seconds',
              (ARRAY['new','paid','shipped','returned'])[1 + i % 4], ((i * 31) % 100000) / 100.0,
              jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (i % 5000), 'qty', 1 + i % 7, 'price', (i % 997) / 10.0),
                                jsonb_build_object('sku', 'SKU-' || (i % 4999), 'qty', 1 + i % 3, 'price', (i % 991) / 10.0))
       FROM generate_series(1, ${n}) i;
     SELECT setval(pg_get_serial_sequence('bench_orders', 'id'), ${n});
     CREATE INDEX bench_orders_customer ON bench_orders (customer_id);
     CREATE INDEX bench_orders_status_placed ON bench_orders (status, placed_at);`,
    `CREATE TABLE bench_events (id bigint PRIMARY KEY, occurred_at timestamptz NOT NULL, kind text NOT NULL, amount numeric(18,6), payload jsonb NOT NULL);
     INSERT INTO bench_events
       SELECT i, timestamptz '2022-01-01 00:00:00+00' + i * interval '250 milliseconds', (ARRAY['login','logout','click','purchase','error'])[1 + i % 5],
              CASE WHEN i % 5 = 3 THEN (i % 123457) / 3.0 END,
              jsonb_build_object('session', md5((i / 10)::text), 'path', '/p/' || (i % 1000), 'ms', i % 5000, 'ok', i % 17 <> 0)
       FROM generate_series(1, ${n}) i;
     CREATE INDEX bench_events_occurred_at ON bench_events (occurred_at);
     CREATE INDEX bench_events_kind ON bench_events (kind, id);`,
    `CREATE TABLE bench_notes (id bigint PRIMARY KEY, author text NOT NULL, title text NOT NULL, body text NOT NULL, tags text[] NOT NULL, updated_at timestamptz NOT NULL);
     INSERT INTO bench_notes
       SELECT i, 'author-' || (i % 2000), initcap(substr(md5(i::text), 1, 12)), repeat(md5(i::text) || ' ', 3),
              ARRAY['t' || (i % 50), 't' || (i % 7)], timestamptz '2023-01-01 00:00:00+00' + i * interval '1 minute'
       FROM generate_series(1, ${n}) i;
     CREATE INDEX bench_notes_author ON bench_notes (author);
     CREATE INDEX bench_notes_updated_at ON bench_notes (updated_at);`,
    probeTableStatement(),
  ];
}

/** The skewed dataset's largest table, and its indexes besides the primary key. */
export const SKEWED_LARGEST = 'bench_ledger';
export const SKEWED_SECONDARY_INDEXES = ['bench_ledger_account_booked', 'bench_ledger_booked_at', 'bench_ledger_kind_reference'] as const;
/** The skewed dataset's small tables. */
export const SKEWED_SMALL_TABLES = [
  'accounts', 'currencies', 'branches', 'customers', 'sessions', 'products', 'prices', 'invoices', 'payments', 'refunds',
  'audit_log', 'settings', 'countries', 'regions', 'merchants', 'devices', 'api_keys', 'webhooks', 'schedules', 'notes',
].map((name) => `bench_${name}`);
/**
 * All small tables together hold this many rows per row of the largest
 * table; table k (1..20) gets a share proportional to 21 - k, so the first is
 * 20 times the last. Chosen so the largest table holds 72% (smoke) to 76% (scale 20) of the bytes.
 */
const SKEWED_SMALL_ROWS_RATIO = 0.5;

/** Rows of each small table of the skewed dataset, in SKEWED_SMALL_TABLES order. */
export function skewedSmallRows(largestRows: number): number[] {
  const n = SKEWED_SMALL_TABLES.length;
  const weights = SKEWED_SMALL_TABLES.map((_, k) => n - k);
  const total = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => Math.max(10, Math.round(largestRows * SKEWED_SMALL_ROWS_RATIO * w / total)));
}

/**
 * The skewed dataset: one ledger-like table (9 columns: integers, timestamps,
 * text, numeric, jsonb) with a primary key and 3 secondary indexes, one of
 * them on two text columns; then 20 small tables, each with a primary key and
 * one text index. The largest table comes first: its statements are the
 * longest, so the two generating sessions finish close together.
 */
function skewedTableStatements(largestRows: number): string[] {
  const n = Math.trunc(largestRows);
  const accounts = Math.max(100, Math.trunc(n / 25));
  const ledger = `CREATE TABLE ${SKEWED_LARGEST} (id bigint NOT NULL, account_id integer NOT NULL, booked_at timestamptz NOT NULL, kind text NOT NULL,
       reference text NOT NULL, amount numeric(14,2) NOT NULL, currency text NOT NULL, memo text NOT NULL, details jsonb NOT NULL);
     INSERT INTO ${SKEWED_LARGEST}
       SELECT i, 1 + (i::bigint * 7919) % ${accounts}, timestamptz '2019-01-01 00:00:00+00' + i * interval '11 seconds',
              (ARRAY['card','transfer','fee','refund','interest','chargeback'])[1 + i % 6], 'REF-' || upper(substr(md5(i::text), 1, 16)),
              ((i::bigint * 37) % 10000000) / 100.0, (ARRAY['EUR','USD','GBP','JPY'])[1 + i % 4],
              'booking ' || substr(md5((i * 3)::text), 1, 20),
              jsonb_build_object('channel', (ARRAY['web','app','pos','api'])[1 + i % 4], 'batch', i / 500, 'flags', jsonb_build_array('f' || i % 13, 'f' || i % 29))
       FROM generate_series(1, ${n}) i;
     ALTER TABLE ${SKEWED_LARGEST} ADD PRIMARY KEY (id);
     CREATE INDEX ${SKEWED_SECONDARY_INDEXES[0]} ON ${SKEWED_LARGEST} (account_id, booked_at);
     CREATE INDEX ${SKEWED_SECONDARY_INDEXES[1]} ON ${SKEWED_LARGEST} (booked_at);
     CREATE INDEX ${SKEWED_SECONDARY_INDEXES[2]} ON ${SKEWED_LARGEST} (kind, reference);`;
  const small = SKEWED_SMALL_TABLES.map((table, k) => {
    const rows = skewedSmallRows(n)[k];
    return `CREATE TABLE ${table} (id bigint PRIMARY KEY, code text NOT NULL, label text NOT NULL, amount numeric(12,2) NOT NULL,
       updated_at timestamptz NOT NULL, attrs jsonb NOT NULL);
     INSERT INTO ${table}
       SELECT i, '${table.slice(6, 9).toUpperCase()}-' || lpad(i::text, 8, '0'), initcap(substr(md5(i::text || '${table}'), 1, 18)),
              (i % 100000) / 3.0, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute',
              jsonb_build_object('k', ${k}, 'active', i % 3 <> 0, 'note', substr(md5(i::text), 1, 12))
       FROM generate_series(1, ${rows}) i;
     CREATE INDEX ${table}_code ON ${table} (code);`;
  });
  return [ledger, ...small, probeTableStatement()];
}

function probeTableStatement(): string {
  return `CREATE TABLE ${PROBE_TABLE} (at timestamptz NOT NULL DEFAULT clock_timestamp(), source text NOT NULL);
     INSERT INTO ${PROBE_TABLE} (source) VALUES ('dataset');`;
}

/** Objects created on the original after T: a correct recovery removes them; the old path leaves them behind. */
const CREATED_AFTER_T = `
  CREATE TABLE created_after_t (id integer PRIMARY KEY, what text NOT NULL);
  INSERT INTO created_after_t SELECT i, 'written after the restore time' FROM generate_series(1, 1000) i;
  CREATE VIEW created_after_t_view AS SELECT count(*) AS n FROM created_after_t;
  CREATE FUNCTION created_after_t_fn() RETURNS integer LANGUAGE sql AS 'SELECT 1';
`;

/**
 * What happened to the original after T: rows deleted and changed, a table
 * dropped, and objects created that did not exist at T.
 */
const DAMAGE: Readonly<Record<DatasetName, string>> = {
  default: `
    DELETE FROM bench_orders WHERE id % 10 = 0;
    UPDATE pgbench_accounts SET abalance = abalance - 100 WHERE aid % 20 = 0;
    DROP TABLE bench_notes;
    ${CREATED_AFTER_T}`,
  skewed: `
    DELETE FROM ${SKEWED_LARGEST} WHERE id % 10 = 0;
    UPDATE ${SKEWED_SMALL_TABLES[0]} SET amount = amount - 100 WHERE id % 20 = 0;
    DROP TABLE ${SKEWED_SMALL_TABLES[SKEWED_SMALL_TABLES.length - 1]};
    ${CREATED_AFTER_T}`,
};

export interface Dataset {
  readonly name: DatasetName;
  /** pg_database_size of the source database. */
  readonly bytes: number;
  readonly size: DatasetSize;
  /** Every user table of the source with pg_total_relation_size (heap, indexes, TOAST), largest first. */
  readonly tableBytes: ReadonlyArray<{ readonly table: string; readonly bytes: number }>;
}

/** Builds the same database on both clusters (concurrently), then damages the target's and keeps it as a template. */
export async function buildDatasets(source: LocalCluster, target: LocalCluster, name: DatasetName, size: DatasetSize): Promise<Dataset> {
  await Promise.all([source, target].map((cluster) => generateDatabase(cluster, name, size)));
  await target.sql(DAMAGE[name], BENCH_DB);
  await target.sql(`ALTER DATABASE ${quoteIdent(BENCH_DB)} RENAME TO ${quoteIdent(DAMAGED_TEMPLATE_DB)}`);
  await resetTarget(target);
  await source.sql('CHECKPOINT');
  const bytes = Number(await source.sql(`SELECT pg_database_size(${quoteLiteral(BENCH_DB)})`));
  return { name, bytes, size, tableBytes: await tableBytes(source, BENCH_DB) };
}

/** pg_total_relation_size of every ordinary table in `public` but the probe's, largest first. */
export async function tableBytes(cluster: LocalCluster, database: string): Promise<Array<{ table: string; bytes: number }>> {
  const out = await cluster.sql(`SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), pg_total_relation_size(c.oid) FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = 'public' AND c.relname <> ${quoteLiteral(PROBE_TABLE)} ORDER BY 2 DESC, 1`, database);
  return out.split('\n').filter(Boolean).map((line) => {
    const [table, bytes] = line.split('|');
    return { table, bytes: Number(bytes) };
  });
}

/** The largest table's share of all tables' bytes (heap, indexes and TOAST; the catalog excluded). */
export function largestShare(tables: ReadonlyArray<{ readonly bytes: number }>): number {
  const total = tables.reduce((sum, t) => sum + t.bytes, 0);
  return total === 0 ? 0 : Math.max(...tables.map((t) => t.bytes)) / total;
}

/** Creates `bench` on `cluster` with the named dataset, vacuumed and analyzed. */
export async function generateDatabase(cluster: LocalCluster, name: DatasetName, size: DatasetSize): Promise<void> {
  await cluster.sql(`CREATE DATABASE ${quoteIdent(BENCH_DB)}`);
  // Two sessions at a time per cluster: both clusters generate at once on the 2 cores.
  const jobs: Array<() => Promise<unknown>> = name === 'skewed'
    ? skewedTableStatements(size.skewedRows).map((sql) => () => cluster.sql(sql, BENCH_DB))
    : [
      () => execFileAsync(pgBin('pgbench'), ['-i', '-q', '-I', 'dtGvp', '-s', String(size.pgbenchScale), '-h', cluster.host, '-p', String(cluster.port), '-U', 'postgres', BENCH_DB], { env: { ...process.env, PGPASSWORD: '' } }),
      ...extraTableStatements(size.extraRows).map((sql) => () => cluster.sql(sql, BENCH_DB)),
    ];
  await runLimited(jobs, 2);
  // Hint bits and statistics set now, so no timed dump pays for them.
  await cluster.sql('VACUUM (ANALYZE)', BENCH_DB);
}

async function runLimited(jobs: ReadonlyArray<() => Promise<unknown>>, limit: number): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, async () => {
    while (next < jobs.length) await jobs[next++]();
  }));
}

/**
 * Before each timed run: every database the previous run left on the target
 * (the restored one, the kept pre-recovery one, a lower-bound scratch one) is
 * dropped, and `bench` is recreated from the damaged template. FILE_COPY and
 * the CHECKPOINT keep that work out of the next timed section.
 */
export async function resetTarget(target: LocalCluster): Promise<void> {
  const leftovers = (await target.sql(`SELECT datname FROM pg_database WHERE NOT datistemplate AND datname NOT IN ('postgres', ${quoteLiteral(DAMAGED_TEMPLATE_DB)})`)).split('\n').filter(Boolean);
  for (const name of leftovers) await target.sql(`DROP DATABASE ${quoteIdent(name)} WITH (FORCE)`);
  await target.sql(`CREATE DATABASE ${quoteIdent(BENCH_DB)} TEMPLATE ${quoteIdent(DAMAGED_TEMPLATE_DB)} STRATEGY FILE_COPY`);
  await target.sql('CHECKPOINT');
}

/** Relations (with their kind) and functions in user schemas, as comparable strings. */
export async function userObjects(cluster: LocalCluster, database: string): Promise<Set<string>> {
  const out = await cluster.sql(`
    SELECT n.nspname || '.' || c.relname || ' (' || c.relkind::text || ')' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
    UNION ALL
    SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')`, database);
  return new Set(out.split('\n').filter(Boolean));
}

/** Row count and an order-independent content hash of one table. */
export interface TableFingerprint {
  readonly rows: number;
  /** Sum over the rows of hashtextextended(row::text, 0): equal multisets of rows give equal sums. */
  readonly hashSum: string;
}

/**
 * Row count and content hash of each of `tables` that exists in `database`
 * (the probe's table is never among them: the probe writes to the target).
 * This is the bench's own equality check, independent of any path's own
 * verification: one scan per table.
 */
export async function tableFingerprints(cluster: LocalCluster, database: string, tables: readonly string[]): Promise<Map<string, TableFingerprint>> {
  if (tables.length === 0) return new Map();
  const existing = new Set((await cluster.sql("SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = 'public'", database)).split('\n').filter(Boolean));
  const present = tables.filter((t) => existing.has(t));
  const fingerprints = new Map<string, TableFingerprint>();
  if (present.length > 0) {
    const out = await cluster.sql(present.map((t) => `SELECT ${quoteLiteral(t)}, count(*), coalesce(sum(hashtextextended(t::text, 0)), 0) FROM ${t} t`).join(' UNION ALL '), database);
    for (const line of out.split('\n').filter(Boolean)) {
      const [name, count, hashSum] = line.split('|');
      fingerprints.set(name, { rows: Number(count), hashSum });
    }
  }
  return fingerprints;
}

export async function sourceTables(source: LocalCluster): Promise<string[]> {
  const out = await source.sql(`SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname = 'public' AND c.relname <> ${quoteLiteral(PROBE_TABLE)} ORDER BY 1`, BENCH_DB);
  return out.split('\n').filter(Boolean);
}
