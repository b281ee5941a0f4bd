/**
 * An independent fingerprint of a database, taken as the local superuser:
 * the rehearsal and the tests compare the recovered database with the one
 * recorded at the restore time through it, without trusting the data path's
 * own verification.
 *
 * Each line is one fact: an object with its owner and privileges, a table's
 * row count and content checksum, a sequence value, a large object's
 * checksum, a database-level property. Privileges are compared as sets, a
 * default (NULL) ACL as the privileges it stands for.
 *
 * Two things point-in-time recovery (RDS's included) cannot bring back
 * exactly, by PostgreSQL's design: unlogged tables come back empty, so they
 * are listed but their rows are not compared; and a sequence's WAL record
 * runs up to 32 values ahead of its last `nextval`, so a recovered sequence
 * may be up to 32 increments ahead of its value at T (never behind), which
 * `compareFingerprints` accepts.
 */

/** Runs SQL as a superuser and returns unaligned, tuples-only output (`LocalCluster` is one). */
export interface SqlRunner {
  sql(sql: string, database?: string): Promise<string>;
}

const USER_SCHEMA = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'";

const CATALOG_SQL = `
SELECT 'database owner=' || pg_get_userbyid(d.datdba) || ' acl=' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(coalesce(d.datacl, acldefault('d'::"char", d.datdba))) x), '') || ' encoding=' || pg_encoding_to_char(d.encoding)
       || ' collate=' || d.datcollate || ' ctype=' || d.datctype || ' comment=' || coalesce(md5(shobj_description(d.oid, 'pg_database')), '')
  FROM pg_database d WHERE d.datname = current_database()
UNION ALL
SELECT 'database-setting role=' || coalesce(pg_get_userbyid(NULLIF(s.setrole, 0)), '*') || ' ' || array_to_string(s.setconfig, ',')
  FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = current_database()
UNION ALL
SELECT 'schema ' || n.nspname || ' owner=' || pg_get_userbyid(n.nspowner) || ' acl=' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(coalesce(n.nspacl, acldefault('n'::"char", n.nspowner))) x), '')
  FROM pg_namespace n WHERE ${USER_SCHEMA}
UNION ALL
SELECT 'relation ' || n.nspname || '.' || c.relname || ' kind=' || c.relkind::text || ' owner=' || pg_get_userbyid(c.relowner)
       || ' acl=' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(coalesce(c.relacl, acldefault((CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END)::"char", c.relowner))) x), '') || ' rls=' || c.relrowsecurity::text || ' comment=' || coalesce(md5(obj_description(c.oid, 'pg_class')), '')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${USER_SCHEMA}
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text || ' owner=' || pg_get_userbyid(p.proowner) || ' acl=' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(coalesce(p.proacl, acldefault('f'::"char", p.proowner))) x), '') || ' body=' || md5(coalesce(p.prosrc, ''))
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${USER_SCHEMA}
UNION ALL
SELECT 'type ' || format_type(t.oid, NULL) || ' kind=' || t.typtype::text || ' owner=' || pg_get_userbyid(t.typowner)
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE ${USER_SCHEMA} AND t.typtype IN ('e', 'd', 'c', 'r') AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
UNION ALL
SELECT 'extension ' || e.extname || ' ' || e.extversion FROM pg_extension e
UNION ALL
SELECT 'trigger ' || t.tgrelid::regclass::text || '.' || t.tgname || ' ' || md5(pg_get_triggerdef(t.oid)) FROM pg_trigger t WHERE NOT t.tgisinternal
UNION ALL
SELECT 'policy ' || p.schemaname || '.' || p.tablename || '.' || p.policyname || ' ' || md5(coalesce(p.qual, '') || '|' || coalesce(p.with_check, '') || '|' || p.roles::text)
  FROM pg_policies p
UNION ALL
SELECT 'default-acl role=' || pg_get_userbyid(a.defaclrole) || ' schema=' || coalesce(a.defaclnamespace::regnamespace::text, '*') || ' ' || a.defaclobjtype::text || ' ' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(a.defaclacl) x), '')
  FROM pg_default_acl a
UNION ALL
SELECT 'sequence ' || s.schemaname || '.' || s.sequencename || ' last=' || coalesce(s.last_value::text, 'unused') || ' increment=' || s.increment_by
  FROM pg_sequences s
UNION ALL
SELECT 'large-object ' || m.oid::text || ' owner=' || pg_get_userbyid(m.lomowner) || ' acl=' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(coalesce(m.lomacl, acldefault('L'::"char", m.lomowner))) x), '') || ' ' || md5(lo_get(m.oid))
  FROM pg_largeobject_metadata m`;

const TABLES_SQL = `
SELECT format('%I.%I', n.nspname, c.relname) || '|' || c.relkind::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 'u' AND ${USER_SCHEMA}
 ORDER BY 1`;

/** Sorted fact lines describing `database` on `cluster`. */
export async function fingerprintDatabase(cluster: SqlRunner, database: string): Promise<string[]> {
  const facts = (await cluster.sql(CATALOG_SQL, database)).split('\n').filter((l) => l !== '');
  const tables = (await cluster.sql(TABLES_SQL, database)).split('\n').filter((l) => l !== '');
  if (tables.length > 0) {
    const counts = tables.map((entry) => {
      const [name, kind] = entry.split('|');
      const from = kind === 'r' ? `ONLY ${name}` : name;
      return `SELECT 'rows ' || ${literal(name)} || ' ' || count(*) || ' ' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM ${from} t`;
    });
    facts.push(...(await cluster.sql(counts.join('\nUNION ALL\n'), database)).split('\n').filter((l) => l !== ''));
  }
  return facts.sort();
}

/** Every database on `cluster` except templates. */
export async function listAllDatabases(cluster: SqlRunner): Promise<string[]> {
  return (await cluster.sql('SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1')).split('\n').filter((l) => l !== '');
}

/** PostgreSQL logs sequence values this far ahead (SEQ_LOG_VALS), so recovery may return a value that much later. */
const SEQUENCE_LOG_AHEAD = 32;
const SEQUENCE_FACT = /^sequence (.*) last=(\d+|unused) increment=(-?\d+)$/;

/** Lines present in one fingerprint and not the other; empty when equal. */
export function compareFingerprints(expected: readonly string[], actual: readonly string[]): { missing: string[]; unexpected: string[] } {
  const a = new Set(actual);
  const e = new Set(expected);
  let missing = expected.filter((l) => !a.has(l));
  let unexpected = actual.filter((l) => !e.has(l));
  for (const line of [...missing]) {
    const want = SEQUENCE_FACT.exec(line);
    if (!want || want[2] === 'unused') continue;
    const match = unexpected.find((other) => {
      const got = SEQUENCE_FACT.exec(other);
      if (!got || got[1] !== want[1] || got[3] !== want[3] || got[2] === 'unused') return false;
      const ahead = (Number(got[2]) - Number(want[2])) / Number(want[3]);
      return ahead >= 0 && ahead <= SEQUENCE_LOG_AHEAD;
    });
    if (match) {
      missing = missing.filter((l) => l !== line);
      unexpected = unexpected.filter((l) => l !== match);
    }
  }
  return { missing, unexpected };
}

function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
