/**
 * Shared setup for the data-path tests: an RDS-like pair of throwaway
 * clusters (a non-superuser master user with password authentication), the
 * rich dataset, and independent ways to compare two databases that do not
 * use the runner's own verification code.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { LocalCluster, pgBin, quoteIdent, quoteLiteral } from '../buildspec/runner/local/cluster';
import type { PgTarget } from '../buildspec/runner/ports';

const execFileAsync = promisify(execFile);

export const FIXTURES = join(__dirname, 'fixtures');
export const RICH_DATASET = join(FIXTURES, 'rich-dataset.sql');
export const DAMAGE = join(FIXTURES, 'damage.sql');

/** Spaces, capitals, a double quote, a single quote and non-ASCII: every quoting mistake shows. */
export const ODD_DATABASE = 'Orders "Prod" it\'s ü';
export const MASTER = { username: 'pitr_master', password: 'S3cret-pw:with@odd/chars?' } as const;

/** A PgTarget for the master user of `cluster`. */
export function masterTarget(cluster: LocalCluster): PgTarget {
  return { host: cluster.host, port: cluster.port, user: MASTER.username, password: MASTER.password, maintenanceDatabase: 'postgres', sslMode: 'disable' };
}

/** libpq URI for the master user, password included (what a user passes to `copy`). */
export function masterUri(cluster: LocalCluster, database = 'postgres'): string {
  return `postgresql://${encodeURIComponent(MASTER.username)}:${encodeURIComponent(MASTER.password)}@${cluster.host}:${cluster.port}/${encodeURIComponent(database)}?sslmode=disable`;
}

export async function startCluster(): Promise<LocalCluster> {
  return LocalCluster.create({ master: { username: MASTER.username, password: MASTER.password } });
}

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
  const parts = (await list('r')).map((t) => `SELECT ${quoteLiteral(t)} AS k, count(*) || ':' || md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM ONLY ${t} x`);
  parts.push(...(await list('S')).map((s) => `SELECT ${quoteLiteral(s)}, last_value || ':' || is_called FROM ${s}`));
  parts.push("SELECT 'large objects', count(*) || ':' || md5(coalesce(string_agg(md5(lo_get(oid)), ',' ORDER BY md5(lo_get(oid))), '')) FROM pg_largeobject_metadata");
  const out = await cluster.sql(`SET TimeZone = 'UTC'; ${parts.join(' UNION ALL ')}`, database);
  return Object.fromEntries(out.split('\n').map((line) => line.split('|') as [string, string]));
}

/** `pg_dump --schema-only` as the superuser, without the lines that differ between runs. */
export async function schemaDump(cluster: LocalCluster, database: string): Promise<string> {
  const { stdout } = await execFileAsync(pgBin('pg_dump'), ['--schema-only', '-d', cluster.uri(database)], { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, PGPASSWORD: '' } });
  return stdout.split('\n').filter((line) => !/^\\(un)?restrict /.test(line)).join('\n');
}

/** Database-level properties as the superuser sees them, for comparing two databases. */
export async function databaseProperties(cluster: LocalCluster, database: string): Promise<string> {
  return cluster.sql(`
    SELECT pg_get_userbyid(d.datdba), (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(d.datacl) a), shobj_description(d.oid, 'pg_database'), d.datconnlimit, d.datallowconn,
           pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
           (SELECT string_agg(coalesce(r.rolname, '*') || ':' || array_to_string(s.setconfig, ','), ';' ORDER BY r.rolname NULLS FIRST)
              FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE s.setdatabase = d.oid)
      FROM pg_database d WHERE d.datname = ${quoteLiteral(database)}`);
}
