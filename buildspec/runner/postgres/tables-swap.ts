/**
 * TABLE_MODE=swap (issue #12): after the side-by-side restore was verified,
 * the restored table takes the live table's place in one short transaction,
 * and the live table becomes `pitr_<stamp>.<table>__before`.
 *
 * Renaming moves a table, not what points at it: PostgreSQL tracks
 * dependents by OID, so a view, a foreign key from another table, a
 * publication, a policy or a function would go on using the old table (now
 * `__before`) after the swap. Every such dependent is listed first, and the
 * swap is refused naming each one; so is anything the restored table lacks
 * (the live table's own triggers and foreign keys, which the restore leaves
 * out). What is rebuilt: the owned sequences, set to the higher of the two
 * values so new rows never reuse a key. Nothing else is guessed.
 */
import type { Client } from 'pg';
import { derivedName, ident, qualified } from './names';
import { formatTableName } from '../../../src/contract';

export interface SwapTable {
  /** The live table. */
  readonly live: { readonly schema: string; readonly name: string };
  /** The restored table in `pitr_<stamp>`. */
  readonly restored: { readonly schema: string; readonly name: string };
}

export interface SwapResult {
  readonly table: string;
  /** Where the live table went: `pitr_<stamp>.<table>__before`. */
  readonly before: string;
  /** From the live table locked to the swap committed. */
  readonly windowMs: number;
}

/** The name the live table is kept under in `pitr_<stamp>`. */
export function beforeName(table: string): string {
  return derivedName(table, '__before');
}

/**
 * Every reason not to swap `t`, one line each naming the object; empty when
 * the swap is safe. Read on the original, in the current transaction.
 */
export async function swapRefusals(client: Client, t: SwapTable): Promise<string[]> {
  const live = qualified(t.live.schema, t.live.name);
  const shown = formatTableName({ schema: t.live.schema, table: t.live.name });
  const found = await client.query<{ oid: number; kind: string; part: boolean }>(
    'SELECT c.oid::int AS oid, c.relkind::text AS kind, c.relispartition AS part FROM pg_class c WHERE c.oid = to_regclass($1)', [live]);
  if (found.rows.length === 0) return [`${shown}: there is no live table to swap with (dropped or renamed after T); move the restored one in place yourself`];
  const { oid, kind, part } = found.rows[0];
  const out: string[] = [];
  if (kind !== 'r' || part) out.push(`${shown}: a partitioned table or a partition; only plain tables are swapped`);
  const inherits = await client.query<{ n: string }>('SELECT count(*)::text AS n FROM pg_inherits WHERE inhrelid = $1 OR inhparent = $1', [oid]);
  if (inherits.rows[0].n !== '0') out.push(`${shown}: part of an inheritance hierarchy; only plain tables are swapped`);
  // Everything that depends on the live table (or its row type) by OID and is not the table's own part.
  const dependents = await client.query<{ kind: string; what: string }>(`
    WITH me AS (SELECT $1::oid AS oid, (SELECT reltype FROM pg_class WHERE oid = $1) AS rowtype)
    SELECT DISTINCT CASE
             WHEN d.classid = 'pg_rewrite'::regclass THEN (SELECT CASE c.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END
                                                             FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class WHERE r.oid = d.objid)
             WHEN d.classid = 'pg_constraint'::regclass THEN 'foreign key from another table'
             WHEN d.classid = 'pg_publication_rel'::regclass THEN 'publication'
             WHEN d.classid = 'pg_trigger'::regclass THEN 'trigger on another table'
             WHEN d.classid = 'pg_policy'::regclass THEN 'row-level security policy on another table'
             WHEN d.classid = 'pg_proc'::regclass THEN 'function'
             ELSE 'dependent object' END AS kind,
           CASE WHEN d.classid = 'pg_rewrite'::regclass
                THEN (SELECT pg_describe_object('pg_class'::regclass, r.ev_class, 0) FROM pg_rewrite r WHERE r.oid = d.objid)
                ELSE pg_describe_object(d.classid, d.objid, d.objsubid) END AS what
      FROM pg_depend d, me
     WHERE ((d.refclassid = 'pg_class'::regclass AND d.refobjid = me.oid) OR (d.refclassid = 'pg_type'::regclass AND d.refobjid = me.rowtype))
       AND d.deptype IN ('n', 'a')
       -- The table's own parts move with it: its indexes, constraints, defaults, triggers, policies, rules, statistics, sequences, row type.
       AND NOT (d.classid = 'pg_class'::regclass AND (d.objid = me.oid OR d.objid IN (SELECT indexrelid FROM pg_index WHERE indrelid = me.oid)
                                                     OR (d.deptype = 'a' AND (SELECT relkind FROM pg_class WHERE oid = d.objid) = 'S')))
       AND NOT (d.classid = 'pg_constraint'::regclass AND d.objid IN (SELECT oid FROM pg_constraint WHERE conrelid = me.oid))
       AND NOT (d.classid = 'pg_attrdef'::regclass AND d.objid IN (SELECT oid FROM pg_attrdef WHERE adrelid = me.oid))
       AND NOT (d.classid = 'pg_trigger'::regclass AND d.objid IN (SELECT oid FROM pg_trigger WHERE tgrelid = me.oid))
       AND NOT (d.classid = 'pg_policy'::regclass AND d.objid IN (SELECT oid FROM pg_policy WHERE polrelid = me.oid))
       AND NOT (d.classid = 'pg_rewrite'::regclass AND d.objid IN (SELECT oid FROM pg_rewrite WHERE ev_class = me.oid))
       AND NOT (d.classid = 'pg_statistic_ext'::regclass)
       AND NOT (d.classid = 'pg_type'::regclass AND d.objid = me.rowtype)
     ORDER BY 1, 2`, [oid]);
  for (const d of dependents.rows) out.push(`${shown}: ${d.what} (${d.kind}) points at the live table by OID and would keep using it after the swap`);
  // The live table's sequences, used by other tables' defaults: they would follow the live table out.
  const sharedSequences = await client.query<{ seq: string; tbl: string }>(`
    SELECT DISTINCT s.objid::regclass::text AS seq, ad.adrelid::regclass::text AS tbl
      FROM pg_depend s JOIN pg_depend u ON u.refobjid = s.objid AND u.classid = 'pg_attrdef'::regclass
      JOIN pg_attrdef ad ON ad.oid = u.objid
     WHERE s.refobjid = $1 AND s.classid = 'pg_class'::regclass AND s.deptype IN ('a', 'i') AND ad.adrelid <> $1 ORDER BY 1, 2`, [oid]);
  for (const s of sharedSequences.rows) out.push(`${shown}: its sequence ${s.seq} is used in a default of ${s.tbl}, which would keep the old one`);
  // What the restored table does not have: the restore leaves out triggers and foreign keys that leave the set.
  const own = await client.query<{ kind: string; name: string }>(`
    SELECT 'trigger' AS kind, tgname AS name FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal
    UNION ALL SELECT 'foreign key', conname FROM pg_constraint WHERE conrelid = $1 AND contype = 'f' ORDER BY 1, 2`, [oid]);
  for (const o of own.rows) out.push(`${shown}: its ${o.kind} ${ident(o.name)} is not on the restored table (restored tables get no triggers and no foreign keys out of TABLES)`);
  return out;
}

/**
 * The swap itself, in one transaction: the restored table's indexes and
 * sequences step aside, the live table moves into `pitr_<stamp>` as
 * `<table>__before`, the restored table moves into its place, and each
 * sequence continues from the higher of the two values.
 */
export async function swapTable(client: Client, t: SwapTable, lockTimeoutMs: number): Promise<SwapResult> {
  const live = qualified(t.live.schema, t.live.name);
  const restored = qualified(t.restored.schema, t.restored.name);
  const before = beforeName(t.live.name);
  await client.query('BEGIN');
  try {
    await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(lockTimeoutMs))}`);
    const parts = await client.query<{ name: string; kind: string; column: string | null }>(`
      SELECT c.relname AS name, c.relkind::text AS kind,
             (SELECT a.attname FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
               WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.refobjid = $1::regclass AND d.deptype IN ('a', 'i')) AS column
        FROM pg_class c
       WHERE c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = $1::regclass)
          OR c.oid IN (SELECT objid FROM pg_depend WHERE classid = 'pg_class'::regclass AND refobjid = $1::regclass AND deptype IN ('a', 'i')
                          AND objid IN (SELECT oid FROM pg_class WHERE relkind = 'S'))`, [restored]);
    await client.query(`LOCK TABLE ${live} IN ACCESS EXCLUSIVE MODE`);
    const locked = Date.now();
    // Checked again under the lock: nothing can have started depending on the live table since the first check.
    const late = await swapRefusals(client, t);
    if (late.length > 0) throw new Error(`not swapped, because: ${late.join('; ')}`);
    const aside = (name: string): string => derivedName(name, '__swap');
    for (const p of parts.rows) {
      await client.query(`ALTER ${p.kind === 'S' ? 'SEQUENCE' : 'INDEX'} ${qualified(t.restored.schema, p.name)} RENAME TO ${ident(aside(p.name))}`);
    }
    // The live table's sequences go along with it; their values are read before it leaves.
    const liveSequences = await client.query<{ column: string; seq: string }>(`
      SELECT a.attname AS column, d.objid::regclass::text AS seq FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
       WHERE d.refobjid = $1::regclass AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND (SELECT relkind FROM pg_class WHERE oid = d.objid) = 'S'`, [live]);
    const liveValues = new Map<string, string>();
    for (const s of liveSequences.rows) {
      liveValues.set(s.column, (await client.query<{ v: string }>(`SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END::text AS v FROM ${s.seq}`)).rows[0].v);
    }
    await client.query(`ALTER TABLE ${live} RENAME TO ${ident(before)}`);
    await client.query(`ALTER TABLE ${qualified(t.live.schema, before)} SET SCHEMA ${ident(t.restored.schema)}`);
    await client.query(`ALTER TABLE ${restored} SET SCHEMA ${ident(t.live.schema)}`);
    if (t.restored.name !== t.live.name) await client.query(`ALTER TABLE ${qualified(t.live.schema, t.restored.name)} RENAME TO ${ident(t.live.name)}`);
    for (const p of parts.rows) {
      const seq = qualified(t.live.schema, aside(p.name));
      await client.query(`ALTER ${p.kind === 'S' ? 'SEQUENCE' : 'INDEX'} ${seq} RENAME TO ${ident(p.name)}`);
      const liveValue = p.column === null ? undefined : liveValues.get(p.column);
      if (p.kind === 'S' && liveValue !== undefined) {
        const name = qualified(t.live.schema, p.name);
        // The higher of the two, so rows written since T never see their keys again; never below the sequence's minimum.
        await client.query(`SELECT setval(${`'${name.replace(/'/g, "''")}'`}, greatest((SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM ${name}), `
          + `${Number(liveValue)}, (SELECT seqmin FROM pg_sequence WHERE seqrelid = ${`'${name.replace(/'/g, "''")}'`}::regclass)), true)`);
      }
    }
    await client.query('COMMIT');
    return {
      table: formatTableName({ schema: t.live.schema, table: t.live.name }),
      before: formatTableName({ schema: t.restored.schema, table: before }),
      windowMs: Date.now() - locked,
    };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
