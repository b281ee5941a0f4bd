/**
 * Shared setup for the data-path tests: an RDS-like pair of throwaway
 * clusters (a non-superuser master user with password authentication), the
 * rich dataset, and independent ways to compare two databases that do not
 * use the runner's own verification code.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { PgTarget } from '../buildspec/runner/ports';
import { LOOPBACK, LocalCluster, SECOND_HOST, pgBin, quoteIdent, quoteLiteral } from '../local/cluster';
import { TestCa } from '../local/test-ca';

const execFileAsync = promisify(execFile);

export const FIXTURES = join(__dirname, 'fixtures');
export const RICH_DATASET = join(FIXTURES, 'rich-dataset.sql');
export const DAMAGE = join(FIXTURES, 'damage.sql');

/** Spaces, capitals, a double quote, a single quote and non-ASCII: every quoting mistake shows. */
export const ODD_DATABASE = 'Orders "Prod" it\'s ü';
export const MASTER = { username: 'pitr_master', password: 'S3cret-pw:with@odd/chars?' } as const;

/** A PgTarget for the master user of `cluster`: verify-full with the test CA when it serves TLS, as on AWS. */
export function masterTarget(cluster: LocalCluster): PgTarget {
  return { host: cluster.host, port: cluster.port, user: MASTER.username, password: MASTER.password, maintenanceDatabase: 'postgres', ...cluster.sslOptions };
}

/** libpq URI for the master user, password included (what a user passes to `copy`). */
export function masterUri(cluster: LocalCluster, database = 'postgres'): string {
  const { sslMode, sslRootCert } = cluster.sslOptions;
  const tls = `sslmode=${sslMode}${sslRootCert ? `&sslrootcert=${encodeURIComponent(sslRootCert)}` : ''}`;
  return `postgresql://${encodeURIComponent(MASTER.username)}:${encodeURIComponent(MASTER.password)}@${cluster.host}:${cluster.port}/${encodeURIComponent(database)}?${tls}`;
}

let ca: Promise<TestCa> | undefined;
/** One test CA per test process (its files are removed when the process exits). */
export function testCa(): Promise<TestCa> {
  if (!ca) {
    ca = TestCa.create();
    void ca.then((made) => process.once('exit', () => made.destroy()));
  }
  return ca;
}

/**
 * An RDS-like cluster serving TLS with a certificate from the test CA (for
 * `certificateNames`, by default its host). By default on the first loopback
 * address: the original.
 */
export async function startCluster(host = LOOPBACK, certificateNames?: string[]): Promise<LocalCluster> {
  return LocalCluster.create({ host, tls: await testCa(), certificateNames, master: { username: MASTER.username, password: MASTER.password } });
}

/**
 * The production route: the point-in-time copy and the original are
 * different hosts (so large tables stream), both with TLS verify-full.
 * Returns `[source, target]`.
 */
export async function startSourceAndTarget(): Promise<[LocalCluster, LocalCluster]> {
  return Promise.all([startCluster(SECOND_HOST), startCluster(LOOPBACK)]);
}

/**
 * Session settings for comparing row text, written out here rather than
 * taken from the runner, so the comparison stays independent: whatever the
 * database or role sets, the same values print the same way.
 */
const DIGEST_SETTINGS = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; "
  + "SET bytea_output = 'hex'; SET lc_monetary = 'C'; SET search_path = ''; ";

/** Creates `database` and loads the rich dataset into it, optionally followed by the damage. */
export async function loadDataset(cluster: LocalCluster, database: string, options: { damage?: boolean } = {}): Promise<void> {
  await cluster.sql(`CREATE DATABASE ${quoteIdent(database)}`);
  await cluster.sqlFile(RICH_DATASET, database);
  if (options.damage) await cluster.sqlFile(DAMAGE, database);
}

export async function databaseExists(cluster: LocalCluster, database: string): Promise<boolean> {
  return (await cluster.sql(`SELECT count(*) FROM pg_database WHERE datname = ${quoteLiteral(database)}`)) === '1';
}

export async function databasesLike(cluster: LocalCluster, pattern: string): Promise<string[]> {
  const out = await cluster.sql(`SELECT datname FROM pg_database WHERE datname LIKE ${quoteLiteral(pattern)} ORDER BY 1`);
  return out === '' ? [] : out.split('\n');
}

/**
 * Per table: row count and md5 of all rows' text in sorted order, computed as
 * the superuser (so RLS cannot hide rows), plus sequence states and large
 * object contents. Independent of the runner's verify.ts.
 */
export async function contentDigest(cluster: LocalCluster, database: string): Promise<Record<string, string>> {
  const list = async (relkind: string): Promise<string[]> => (await cluster.sql(`
    SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = '${relkind}' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
     ORDER BY 1`, database)).split('\n').filter(Boolean);
  // ROW(alias.*) is the whole row even when a column has the alias's name (a bare `x::text` would be that column).
  const parts = (await list('r')).map((t) => `SELECT ${quoteLiteral(t)} AS k, count(*) || ':' || md5(coalesce(string_agg(ROW(pitr_row.*)::text, E'\\n' ORDER BY ROW(pitr_row.*)::text), '')) FROM ONLY ${t} pitr_row`);
  parts.push(...(await list('S')).map((s) => `SELECT ${quoteLiteral(s)}, last_value || ':' || is_called FROM ${s}`));
  parts.push("SELECT 'large objects', count(*) || ':' || md5(coalesce(string_agg(md5(lo_get(oid)), ',' ORDER BY md5(lo_get(oid))), '')) FROM pg_largeobject_metadata");
  const out = await cluster.sql(`${DIGEST_SETTINGS}${parts.join(' UNION ALL ')}`, database);
  return Object.fromEntries(out.split('\n').map((line) => line.split('|') as [string, string]));
}

/** `pg_dump --schema-only` as the superuser, without the lines that differ between runs. */
export async function schemaDump(cluster: LocalCluster, database: string): Promise<string> {
  const { stdout } = await execFileAsync(pgBin('pg_dump'), ['--schema-only', '-d', cluster.uri(database)], { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, PGPASSWORD: '' } });
  return stdout.split('\n').filter((line) => !/^\\(un)?restrict /.test(line)).join('\n');
}

/** Database-level properties as the superuser sees them, for comparing two databases (a default, NULL, ACL as the privileges it stands for). */
export async function databaseProperties(cluster: LocalCluster, database: string): Promise<string> {
  return cluster.sql(`
    SELECT pg_get_userbyid(d.datdba), (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(coalesce(d.datacl, acldefault('d', d.datdba))) a), shobj_description(d.oid, 'pg_database'), d.datconnlimit, d.datallowconn,
           pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
           (SELECT string_agg(coalesce(r.rolname, '*') || ':' || array_to_string(s.setconfig, ','), ';' ORDER BY r.rolname NULLS FIRST)
              FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE s.setdatabase = d.oid)
      FROM pg_database d WHERE d.datname = ${quoteLiteral(database)}`);
}
