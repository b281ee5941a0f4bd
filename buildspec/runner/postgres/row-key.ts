/**
 * How rows of a table are paired across two points in time: by its primary
 * key, or else by a unique key over NOT NULL columns. Table recovery's change
 * report and the record of writes made after T both pair rows this way.
 */
import type { Client } from 'pg';

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
  const { rows } = await client.query<{ cols: string[] }>(`
    SELECT array_agg(a.attname::text ORDER BY k.ord) AS cols
      FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      JOIN pg_class ic ON ic.oid = i.indexrelid
     WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indisvalid AND k.ord <= i.indnkeyatts AND i.indpred IS NULL AND i.indexprs IS NULL
     GROUP BY i.indexrelid, i.indisprimary, ic.relname
    HAVING bool_and(a.attnotnull) AND bool_and(k.attnum > 0)
     ORDER BY i.indisprimary DESC, ic.relname`, [String(relation)]);
  return rows.map((r) => r.cols);
}

/** Whether `key` (its columns in any order) is one of `keys`. */
export function isOneOf(key: readonly string[], keys: readonly (readonly string[])[]): boolean {
  const sorted = (cols: readonly string[]): string => [...cols].sort().join('\u0000');
  return keys.some((k) => sorted(k) === sorted(key));
}
