/**
 * What the original instance holds, read as the local superuser, to prove
 * that a restore drill wrote nothing to it: the rehearsal (`--drill`) and
 * the tests judge the original by this, never by the runner's word.
 *
 * - pg_stat_database's write counters (tup_inserted, tup_updated,
 *   tup_deleted) per database: reads and read-only transactions do not move
 *   them, so any row written anywhere (catalogs included) does;
 * - the database list with OIDs, owners, ACLs, connection settings;
 * - roles (with their password hashes) and memberships;
 * - per-database and per-role settings, and every server setting not at its default;
 * - a content fingerprint of every database (fingerprint.ts).
 */
import { fingerprintDatabase, listAllDatabases, type SqlRunner } from './fingerprint';

export type OriginalState = Readonly<Record<string, string | Readonly<Record<string, readonly string[]>>>>;

/** Backends report their statistics at exit and at most once a second: reading sooner could miss a write. */
const STATS_SETTLE_MS = 1_500;

export async function readOriginalState(cluster: SqlRunner): Promise<OriginalState> {
  await new Promise((resolve) => setTimeout(resolve, STATS_SETTLE_MS));
  const lines = (sql: string): Promise<string> => cluster.sql(sql);
  const fingerprints: Record<string, readonly string[]> = {};
  for (const db of await listAllDatabases(cluster)) fingerprints[db] = await fingerprintDatabase(cluster, db);
  return {
    'write counters': await lines(`SELECT string_agg(datname || ' inserted=' || tup_inserted || ' updated=' || tup_updated || ' deleted=' || tup_deleted, E'\\n' ORDER BY datname)
      FROM pg_stat_database WHERE datname IS NOT NULL`),
    'databases': await lines("SELECT string_agg(oid || ' ' || datname || ' owner=' || datdba || ' acl=' || coalesce(datacl::text, '-') || ' allowconn=' || datallowconn || ' connlimit=' || datconnlimit || ' template=' || datistemplate, E'\\n' ORDER BY datname) FROM pg_database"),
    'roles': await lines("SELECT string_agg(rolname || ' login=' || rolcanlogin || ' super=' || rolsuper || ' password=' || coalesce(md5(rolpassword), '-'), E'\\n' ORDER BY rolname) FROM pg_authid"),
    'memberships': await lines("SELECT string_agg(roleid::regrole || ' > ' || member::regrole || ' admin=' || admin_option, E'\\n' ORDER BY 1) FROM pg_auth_members"),
    'database and role settings': await lines("SELECT string_agg(setdatabase || '/' || setrole || ' ' || array_to_string(setconfig, ','), E'\\n' ORDER BY setdatabase, setrole) FROM pg_db_role_setting"),
    'server settings': await lines("SELECT string_agg(name || '=' || setting, E'\\n' ORDER BY name) FROM pg_settings WHERE source NOT IN ('session', 'client', 'default')"),
    'content': fingerprints,
  };
}

/** Each difference as a line for a person; empty when the two states are equal. */
export function diffOriginalState(before: OriginalState, after: OriginalState): string[] {
  const out: string[] = [];
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const a = before[key];
    const b = after[key];
    if (typeof a === 'string' || typeof b === 'string') {
      const was = new Set(String(a ?? '').split('\n'));
      const now = new Set(String(b ?? '').split('\n'));
      for (const l of was) if (!now.has(l)) out.push(`${key}: before, not after: ${l}`);
      for (const l of now) if (!was.has(l)) out.push(`${key}: after, not before: ${l}`);
      continue;
    }
    for (const db of new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})])) {
      const was = new Set(a?.[db] ?? []);
      const now = new Set(b?.[db] ?? []);
      if (!a?.[db]) {
        out.push(`${key}: database ${JSON.stringify(db)} appeared`);
        continue;
      }
      if (!b?.[db]) {
        out.push(`${key}: database ${JSON.stringify(db)} disappeared`);
        continue;
      }
      for (const l of was) if (!now.has(l)) out.push(`${key} of ${JSON.stringify(db)}: before, not after: ${l}`);
      for (const l of now) if (!was.has(l)) out.push(`${key} of ${JSON.stringify(db)}: after, not before: ${l}`);
    }
  }
  return out;
}

/** VACUUM ANALYZE every database, so autovacuum has nothing to do (and no counter to move) while the state is compared. */
export async function settleAutovacuum(cluster: SqlRunner): Promise<void> {
  for (const db of await listAllDatabases(cluster)) await cluster.sql('VACUUM ANALYZE', db);
}
