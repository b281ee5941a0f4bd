/**
 * Verification (recovery step 7): fingerprints of the point-in-time copy and
 * of the restored database, compared before anything becomes visible.
 *
 * A fingerprint holds, for every table whatever its size, the row count and
 * an order-independent content checksum computed on the server: the sum of a
 * 64-bit hash of each row's text over all rows. Nothing is sorted, memory is
 * constant, and a changed, missing or extra row changes it (a false match
 * needs a 64-bit hash collision). Both servers compute it side by side, in
 * sessions with the same output settings (SESSION_SETTINGS), so the same
 * values print as the same text. Also: every sequence's last_value and
 * is_called; the large objects (data, owner and privileges); and counts of
 * schema objects by kind. Database-level properties are compared separately
 * (`compareProperties`).
 *
 * The hash is PostgreSQL's `hashtextextended`, about as cheap as printing the
 * row (md5 doubled the cost). It is deterministic for a given build; both
 * ends are the same engine version on the same kind of machine (the
 * point-in-time copy is restored from the original), so both compute the
 * same function.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Client } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { ident, literal, qualified } from './names';
import { SESSION_SETTINGS } from './process';

const USER_SCHEMAS = 'n.nspname NOT IN (\'pg_catalog\', \'information_schema\') AND n.nspname NOT LIKE \'pg\\_toast%\' AND n.nspname NOT LIKE \'pg\\_temp\\_%\'';

/** A table to verify, chosen on the point-in-time copy. */
export interface TableCheck {
  readonly schema: string;
  readonly name: string;
  readonly bytes: number;
}

export interface Fingerprint {
  /** `schema.name` (quoted) -> `rows/checksum`, or `missing`. */
  readonly tables: Record<string, string>;
  /** `schema.name` -> `last_value/is_called`, or `missing`. */
  readonly sequences: Record<string, string>;
  readonly largeObjects: string;
  /** Kind -> count of schema objects of that kind. */
  readonly objects: Record<string, string>;
}

/** Tables with rows of their own (not views, not partitioned parents), outside extensions. */
export async function listTables(client: Client): Promise<TableCheck[]> {
  const { rows } = await client.query<{ schema: string; name: string; bytes: string }>(`
    SELECT n.nspname AS schema, c.relname AS name, pg_table_size(c.oid)::text AS bytes
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND ${USER_SCHEMAS}
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
     ORDER BY 1, 2`);
  return rows.map((r) => ({ schema: r.schema, name: r.name, bytes: Number(r.bytes) }));
}

async function listSequences(client: Client): Promise<Array<{ schema: string; name: string }>> {
  const { rows } = await client.query<{ schema: string; name: string }>(`
    SELECT n.nspname AS schema, c.relname AS name
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'S' AND ${USER_SCHEMAS}
     ORDER BY 1, 2`);
  return rows;
}

const OBJECT_COUNTS = `
  SELECT 'relation kind ' || c.relkind::text AS kind, count(*)::text AS n
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${USER_SCHEMAS} AND c.relkind <> 't' GROUP BY 1
  UNION ALL SELECT 'function kind ' || p.prokind::text, count(*)::text
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${USER_SCHEMAS} GROUP BY 1
  UNION ALL SELECT 'type kind ' || t.typtype::text, count(*)::text
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE ${USER_SCHEMAS} GROUP BY 1
  UNION ALL SELECT 'constraint kind ' || o.contype::text, count(*)::text
    FROM pg_constraint o JOIN pg_namespace n ON n.oid = o.connamespace WHERE ${USER_SCHEMAS} GROUP BY 1
  UNION ALL SELECT 'trigger', count(*)::text FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL SELECT 'policy', count(*)::text FROM pg_policy
  UNION ALL SELECT 'rule', count(*)::text FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${USER_SCHEMAS}
  UNION ALL SELECT 'schema', count(*)::text FROM pg_namespace n WHERE ${USER_SCHEMAS}
  UNION ALL SELECT 'extension ' || extname::text || ' ' || extversion, '1' FROM pg_extension
  UNION ALL SELECT 'default privileges', count(*)::text FROM pg_default_acl`;

/**
 * Reads the fingerprint of the database `client` is connected to, for the
 * tables and sequences chosen on the point-in-time copy. A table or sequence
 * that does not exist is recorded as `missing`, not thrown.
 */
export async function fingerprint(
  client: Client, tables: readonly TableCheck[], sequences?: ReadonlyArray<{ schema: string; name: string }>, aborted: () => void = () => undefined,
): Promise<Fingerprint> {
  const tableResult = await tableChecksums(client, tables, aborted);
  return { tables: tableResult, ...await fingerprintRest(client, sequences, aborted) };
}

/**
 * The tables' part of a fingerprint: `schema.name` (quoted) -> `rows/checksum`,
 * or `missing`. A table's entry may be taken as soon as nothing will write
 * its rows any more, apart from the rest.
 */
export async function tableChecksums(
  client: Client, tables: readonly TableCheck[], aborted: () => void = () => undefined,
): Promise<Record<string, string>> {
  await pinSessionSettings(client);
  const tableResult: Record<string, string> = {};
  for (const table of tables) {
    aborted();
    const name = qualified(table.schema, table.name);
    const sql = `SELECT count(*)::text AS rows, coalesce(sum(hashtextextended(ROW(t.*)::text, 0)), 0)::text AS sum FROM ONLY ${name} t`;
    tableResult[name] = await queryOrMissing(client, sql, (r) => `${r.rows}/${r.sum}`);
  }
  return tableResult;
}

/**
 * A table whose data is streamed with COPY, and the COPY it is read with: the
 * columns named (generated columns excluded), in binary or text format.
 */
export interface CopiedTable {
  readonly schema: string;
  readonly name: string;
  readonly columns: readonly string[];
  readonly binary: boolean;
}

/** `COPY <table> (<columns>) TO STDOUT [(FORMAT binary)]`: one statement for the source's stream and the restored table's checksum, so both print the same bytes. */
export function copyOutSql(table: CopiedTable): string {
  return `COPY ${qualified(table.schema, table.name)} (${table.columns.map(ident).join(', ')}) TO STDOUT${table.binary ? ' (FORMAT binary)' : ''}`;
}

/**
 * The checksum of a streamed table, taken over the bytes of its COPY output
 * (copyOutSql) instead of a second read of the point-in-time copy: on the
 * source while the stream flows into the original, on the original by one
 * COPY of the restored table. `rows/<first 64 bits of the SHA-256, signed>`.
 * It depends on row order, which is the same on both sides: the restored
 * table is filled by that one COPY into a table emptied in the same
 * transaction, so its pages hold the rows in stream order, and it is read
 * back by a sequential scan from its first page (synchronize_seqscans off).
 * A changed, missing, extra or moved row changes it; a moved row can only
 * come from a write to the restored table, which nothing does before
 * verification.
 */
export class CopyChecksum {
  private readonly hash: Hash = createHash('sha256');

  /** A pass-through that hashes what flows from the source's COPY TO into the target's COPY FROM. */
  passThrough(): Transform {
    const hash = this.hash;
    return new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        done(null, chunk);
      },
    });
  }

  /** A sink that hashes a COPY TO's output. */
  sink(): Writable {
    const hash = this.hash;
    return new Writable({
      write(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        done();
      },
    });
  }

  /** Once the COPY is complete: `rows/checksum`, as in a Fingerprint. */
  result(rows: number): string {
    return `${rows}/${BigInt.asIntN(64, this.hash.digest().readBigUInt64BE(0))}`;
  }
}

/**
 * A streamed table's checksum on the restored database, read with COPY
 * (copyOutSql) in `encoding`, the point-in-time copy's database encoding
 * (the stream's client_encoding); `missing` when the table does not exist.
 */
export async function copyChecksum(client: Client, table: CopiedTable, encoding: string): Promise<string> {
  await pinSessionSettings(client);
  // A scan that joins another one running on the same table (an index build) would start mid-table, in another row order.
  await client.query(`SET synchronize_seqscans = off; SET client_encoding = ${literal(encoding)}`);
  await client.query('SAVEPOINT pitr_verify');
  const checksum = new CopyChecksum();
  const out = client.query(copyTo(copyOutSql(table)));
  try {
    await pipeline(out, checksum.sink());
  } catch (err) {
    if ((err as { code?: string }).code !== '42P01') throw err;
    await client.query('ROLLBACK TO SAVEPOINT pitr_verify');
    return 'missing';
  }
  await client.query('RELEASE SAVEPOINT pitr_verify');
  return checksum.result(out.rowCount);
}

/**
 * SESSION_SETTINGS on `client`, in one round trip. The runner's connections
 * carry them in their startup options already; a client opened some other
 * way gets them here, so row text never depends on how it was opened.
 */
async function pinSessionSettings(client: Client): Promise<void> {
  await client.query(Object.entries(SESSION_SETTINGS).map(([name, value]) => `SET ${name} = ${literal(value)}`).join('; '));
}

/** Everything in a fingerprint but the tables: sequences, large objects, counts of schema objects. */
export async function fingerprintRest(
  client: Client, sequences?: ReadonlyArray<{ schema: string; name: string }>, aborted: () => void = () => undefined,
): Promise<Omit<Fingerprint, 'tables'>> {
  await pinSessionSettings(client);
  const seqs = sequences ?? await listSequences(client);
  const sequenceResult: Record<string, string> = {};
  for (const seq of seqs) {
    aborted();
    const name = qualified(seq.schema, seq.name);
    sequenceResult[name] = await queryOrMissing(client, `SELECT last_value::text AS v, is_called FROM ${name}`, (r) => `${r.v}/${r.is_called}`);
  }
  aborted();
  // Per large object: its OID, data, owner and privileges (a NULL ACL stands for the owner's default privileges).
  const lo = await client.query<{ n: string; sum: string }>(`
    SELECT count(*)::text AS n,
           coalesce(sum(hashtextextended(concat_ws('/', oid, md5(lo_get(oid)), pg_get_userbyid(lomowner),
             (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(coalesce(lomacl, acldefault('L', lomowner))) a)), 0)), 0)::text AS sum
      FROM pg_largeobject_metadata`);
  const objects: Record<string, string> = {};
  for (const row of (await client.query<{ kind: string; n: string }>(OBJECT_COUNTS)).rows) objects[row.kind] = row.n;
  return { sequences: sequenceResult, largeObjects: `${lo.rows[0].n}/${lo.rows[0].sum}`, objects };
}

async function queryOrMissing(client: Client, sql: string, format: (row: Record<string, unknown>) => string): Promise<string> {
  try {
    await client.query('SAVEPOINT pitr_verify');
    const { rows } = await client.query(sql);
    await client.query('RELEASE SAVEPOINT pitr_verify');
    return format(rows[0]);
  } catch (err) {
    // 42P01: undefined_table. Anything else (permissions, I/O) is a real failure.
    if ((err as { code?: string }).code !== '42P01') throw err;
    await client.query('ROLLBACK TO SAVEPOINT pitr_verify');
    return 'missing';
  }
}

/** Every difference, as `what: copy has X, restored has Y`; empty when equal. */
export function compareFingerprints(copy: Fingerprint, restored: Fingerprint): string[] {
  const out: string[] = [];
  const diff = (what: string, a: Record<string, string>, b: Record<string, string>, label: (key: string) => string): void => {
    for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      if (a[key] !== b[key]) out.push(`${label(key)}: point-in-time copy has ${a[key] ?? 'none'}, restored has ${b[key] ?? 'none'} (${what})`);
    }
  };
  diff('rows/checksum', copy.tables, restored.tables, (k) => `table ${k}`);
  diff('last_value/is_called', copy.sequences, restored.sequences, (k) => `sequence ${k}`);
  if (copy.largeObjects !== restored.largeObjects) {
    out.push(`large objects: point-in-time copy has ${copy.largeObjects}, restored has ${restored.largeObjects} (count/checksum of data, owner and privileges)`);
  }
  diff('count', copy.objects, restored.objects, (k) => k);
  return out;
}

/** Database-level properties: what CREATE DATABASE, ALTER DATABASE, GRANT and COMMENT set. */
export interface DatabaseProperties {
  readonly owner: string;
  readonly encoding: string;
  readonly collate: string;
  readonly ctype: string;
  readonly localeProvider: string;
  readonly iculocale: string | null;
  readonly connectionLimit: number;
  /** Privileges granted on the database (defaults made explicit), grantee `PUBLIC` for everyone; grantors are not compared. */
  readonly acl: ReadonlyArray<{ grantee: string; privilege: string; grantable: boolean }>;
  /** Settings: role ('' for all roles) and `name=value`, in catalog order per role. */
  readonly settings: ReadonlyArray<{ role: string; config: readonly string[] }>;
  readonly comment: string | null;
}

/** Reads the properties of `database` from any database on the same server. */
export async function readDatabaseProperties(client: Client, database: string): Promise<DatabaseProperties | undefined> {
  const { rows } = await client.query(`
    SELECT pg_get_userbyid(d.datdba) AS owner, pg_encoding_to_char(d.encoding) AS encoding,
           d.datcollate AS collate, d.datctype AS ctype,
           -- Read through to_jsonb so the query runs on every version (PG15 added the provider, PG17 renamed the ICU locale).
           coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') AS provider, coalesce(to_jsonb(d) ->> 'daticulocale', to_jsonb(d) ->> 'datlocale') AS iculocale,
           d.datconnlimit AS connlimit, shobj_description(d.oid, 'pg_database') AS comment,
           (SELECT coalesce(json_agg(json_build_array(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type, a.is_grantable)
                    ORDER BY a.grantee = 0, pg_get_userbyid(a.grantee), a.privilege_type), '[]'::json)
              FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a) AS acl,
           (SELECT coalesce(json_agg(json_build_array(coalesce((SELECT rolname FROM pg_roles r WHERE r.oid = s.setrole), ''), s.setconfig)
), '[]'::json)
              FROM pg_db_role_setting s WHERE s.setdatabase = d.oid) AS settings
      FROM pg_database d WHERE d.datname = $1`, [database]);
  if (rows.length === 0) return undefined;
  const r = rows[0];
  return {
    owner: r.owner,
    encoding: r.encoding,
    collate: r.collate,
    ctype: r.ctype,
    localeProvider: r.provider,
    iculocale: r.iculocale,
    connectionLimit: r.connlimit,
    acl: (r.acl as Array<[string, string, boolean]>).map(([grantee, privilege, grantable]) => ({ grantee, privilege, grantable })),
    settings: (r.settings as Array<[string, string[]]>)
      .map(([role, config]) => ({ role, config }))
      .sort((a, b) => (a.role < b.role ? -1 : a.role > b.role ? 1 : 0)),
    comment: r.comment,
  };
}

/** Differences between two databases' properties; empty when equal. */
export function compareProperties(copy: DatabaseProperties, restored: DatabaseProperties): string[] {
  const out: string[] = [];
  const keys: Array<keyof DatabaseProperties> = ['owner', 'encoding', 'collate', 'ctype', 'localeProvider', 'iculocale', 'connectionLimit', 'acl', 'settings', 'comment'];
  for (const key of keys) {
    const a = JSON.stringify(copy[key]);
    const b = JSON.stringify(restored[key]);
    if (a !== b) out.push(`database ${key}: point-in-time copy has ${a}, restored has ${b}`);
  }
  return out;
}

/** GUCs whose value is a list; ALTER DATABASE ... SET needs each element as its own literal. */
const LIST_SETTINGS = new Set(['search_path', 'temp_tablespaces', 'session_preload_libraries', 'local_preload_libraries', 'shared_preload_libraries']);

/** `ALTER DATABASE <db> [IN ROLE ...] SET ...` reproducing one `name=value` entry of pg_db_role_setting. */
export function settingStatement(database: string, role: string, entry: string): string {
  const at = entry.indexOf('=');
  const name = entry.slice(0, at);
  const value = entry.slice(at + 1);
  const values = LIST_SETTINGS.has(name.toLowerCase()) ? splitGucList(value).map(literal).join(', ') : literal(value);
  const target = role ? `ROLE ${ident(role)} IN DATABASE ${ident(database)}` : `DATABASE ${ident(database)}`;
  return `ALTER ${target} SET ${name.split('.').map(ident).join('.')} TO ${values === '' ? "''" : values}`;
}

/** Splits a stored list GUC (`"My Schema", public`) into its elements, unquoting as the server does. */
export function splitGucList(value: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < value.length) {
    while (value[i] === ' ' || value[i] === ',') i++;
    if (i >= value.length) break;
    let item = '';
    if (value[i] === '"') {
      i++;
      while (i < value.length) {
        if (value[i] === '"' && value[i + 1] === '"') {
          item += '"';
          i += 2;
        } else if (value[i] === '"') {
          i++;
          break;
        } else {
          item += value[i++];
        }
      }
    } else {
      while (i < value.length && value[i] !== ',') item += value[i++];
      item = item.trim();
    }
    out.push(item);
  }
  return out;
}
