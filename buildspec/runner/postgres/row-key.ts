/**
 * How rows of a table are paired across two points in time: by its primary
 * key, or else by a unique key over NOT NULL columns. Table recovery's change
 * report and the record of writes made after T both pair rows this way.
 */
import type { Client } from 'pg';
import { ident } from './names';

/**
 * The primary key, or else the first unique index over NOT NULL plain columns without a predicate: its columns in
 * key order, or undefined. `relation` is a qualified name or an OID (both read as regclass).
 */
export async function rowKeyColumns(client: Client, relation: string | number): Promise<string[] | undefined> {
  return (await rowKeys(client, relation))[0];
}

/**
 * Every key rows can be paired by: the primary key first, then each unique index over NOT NULL plain columns without
 * a predicate, by name. Only valid indexes: one left invalid by a failed CREATE UNIQUE INDEX CONCURRENTLY promises
 * nothing.
 */
export async function rowKeys(client: Client, relation: string | number): Promise<string[][]> {
  // Named: prepared once per session, not parsed and planned again for every table (a good part of a record's catalog reads).
  const { rows } = await client.query<{ cols: string[] }>({
    name: 'pitr-row-keys',
    text: `
    SELECT array_agg(a.attname::text ORDER BY k.ord) AS cols
      FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      JOIN pg_class ic ON ic.oid = i.indexrelid
     WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indisvalid AND k.ord <= i.indnkeyatts AND i.indpred IS NULL AND i.indexprs IS NULL
     GROUP BY i.indexrelid, i.indisprimary, ic.relname
    HAVING bool_and(a.attnotnull) AND bool_and(k.attnum > 0)
     ORDER BY i.indisprimary DESC, ic.relname`,
    values: [String(relation)],
  });
  return rows.map((r) => r.cols);
}

/** Whether `key` (its columns in any order) is one of `keys`. */
export function isOneOf(key: readonly string[], keys: readonly (readonly string[])[]): boolean {
  const sorted = (cols: readonly string[]): string => [...cols].sort().join('\u0000');
  return keys.some((k) => sorted(k) === sorted(key));
}

/** How a key column is matched. */
export interface KeyEquality {
  /** Its `=`: a plain `=` for pg_catalog's (always found), else schema-qualified: `OPERATOR(public.=)` for citext. */
  readonly op: string;
  /** The unique index's collation, schema-qualified, where it is not the column's. */
  readonly collation?: string;
}

/**
 * The equality of each of `key`'s columns: the one its unique index promises uniqueness by (the btree equality of the
 * index's operator class, under the index's collation where that differs from the column's: a unique index on
 * `name COLLATE "C"` of a case-insensitive column holds Bob and bob apart), else its type's `=` (through any depth
 * of domains). The runner's sessions have an empty search_path, where an extension type's `=` is not found (citext's
 * then resolves to text = text, case-sensitive); the replay SQL runs under the user's, which may not name the
 * extension's schema.
 */
export async function keyEqualities(client: Client, relation: string | number, key: readonly string[]): Promise<KeyEquality[]> {
  const { rows } = await client.query<{ name: string; op: string | null; collation: string | null }>({
    name: 'pitr-key-equalities',
    text: `
    WITH idx AS (
      SELECT i.* FROM pg_index i
       WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = cardinality($2::text[])
         AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text COLLATE "C") FROM unnest(i.indkey[0:i.indnkeyatts - 1]) k(attnum)
                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)
             = (SELECT array_agg(c ORDER BY c COLLATE "C") FROM unnest($2::text[]) c)
       ORDER BY i.indisprimary DESC, i.indexrelid LIMIT 1)
    SELECT a.attname::text AS name,
           (SELECT CASE WHEN n.nspname = 'pg_catalog' THEN '=' ELSE format('OPERATOR(%I.%s)', n.nspname, o.oprname) END
              FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
             WHERE o.oid = coalesce(
               (SELECT ao.amopopr FROM idx CROSS JOIN LATERAL generate_subscripts(idx.indkey, 1) s(pos)
                  JOIN pg_opclass oc ON oc.oid = idx.indclass[s.pos]
                  JOIN pg_amop ao ON ao.amopfamily = oc.opcfamily AND ao.amoplefttype = oc.opcintype AND ao.amoprighttype = oc.opcintype AND ao.amopstrategy = 3
                  JOIN pg_am am ON am.oid = ao.amopmethod AND am.amname = 'btree'
                 WHERE s.pos < idx.indnkeyatts AND idx.indkey[s.pos] = a.attnum),
               (SELECT o2.oid FROM pg_operator o2 JOIN pg_namespace n2 ON n2.oid = o2.oprnamespace
                 WHERE o2.oprname = '=' AND o2.oprleft = base.oid AND o2.oprright = base.oid AND o2.oprresult = 'bool'::regtype
                 ORDER BY n2.nspname = 'pg_catalog' DESC, n2.nspname LIMIT 1))) AS op,
           (SELECT format('%I.%I', cn.nspname, co.collname) FROM idx CROSS JOIN LATERAL generate_subscripts(idx.indkey, 1) s(pos)
              JOIN pg_collation co ON co.oid = idx.indcollation[s.pos] JOIN pg_namespace cn ON cn.oid = co.collnamespace
             WHERE s.pos < idx.indnkeyatts AND idx.indkey[s.pos] = a.attnum AND idx.indcollation[s.pos] <> 0 AND idx.indcollation[s.pos] <> a.attcollation) AS collation
      FROM pg_attribute a
      CROSS JOIN LATERAL (
        WITH RECURSIVE d(oid, typtype, typbasetype) AS (
          SELECT t.oid, t.typtype, t.typbasetype FROM pg_type t WHERE t.oid = a.atttypid
          UNION ALL SELECT t.oid, t.typtype, t.typbasetype FROM pg_type t JOIN d ON t.oid = d.typbasetype WHERE d.typtype = 'd')
        SELECT d.oid FROM d WHERE d.typtype <> 'd') base
     WHERE a.attrelid = $1::regclass AND a.attname = ANY($2::text[]) AND NOT a.attisdropped`,
    values: [String(relation), key],
  });
  const byName = new Map(rows.map((r) => [r.name, { op: r.op ?? '=', ...(r.collation ? { collation: r.collation } : {}) }]));
  return key.map((k) => byName.get(k) ?? { op: '=' });
}

/**
 * The equalities both sides agree on: where a key column's type differs between them (text at T, citext since), the
 * operator of one side does not take the other's values, so that column falls back to a plain `=` (resolved by the
 * implicit casts between the two types, as before the operators were looked up).
 */
export function agreedEqualities(a: readonly KeyEquality[], b: readonly KeyEquality[]): KeyEquality[] {
  return a.map((e, i) => (e.op === b[i].op && e.collation === b[i].collation ? e : { op: '=' }));
}

/** `left.k1 = right.k1 AND ...` with each key column's own equality operator (keyEqualities). */
export function keyMatch(left: string, right: string, key: readonly string[], equalities: readonly KeyEquality[]): string {
  return key.map((k, i) => {
    const e = equalities[i];
    return `${left}.${ident(k)}${e.collation ? ` COLLATE ${e.collation}` : ''} ${e.op} ${right}.${ident(k)}`;
  }).join(' AND ');
}
