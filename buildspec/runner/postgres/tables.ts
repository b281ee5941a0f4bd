/**
 * Table-level recovery (TABLES, issue #12): the chosen tables as they were at
 * T, restored into a new schema `pitr_<stamp>` of the same database on the
 * original, beside the live tables, with a report of what changed since T
 * and ready SQL to put rows back (printed and stored, never executed).
 *
 * How: the point-in-time copy is disposable, so the tables are moved there
 * into `pitr_<stamp>` (`ALTER TABLE ... SET SCHEMA` takes their indexes,
 * constraints and owned sequences along), whatever ties them to objects
 * outside the set is cut there (foreign keys out of the set, a parent outside
 * the set, triggers), and `pg_dump -n pitr_<stamp>` | `pg_restore
 * --single-transaction` brings exactly that schema to the original. On the
 * original the restore creates the schema and its contents and writes nothing
 * else; it either all lands or nothing does. No session is ended.
 *
 * Names in `pitr_<stamp>`: one schema for the whole run, each table under its
 * own name; when two chosen tables share a name (different schemas) or a table
 * is called `changes` (the report), each of those is named `<schema>__<table>`.
 * Indexes and sequences that would collide in the one schema are renamed the
 * same way on the copy before the move.
 *
 * TABLE_MODE=swap continues from there (tables-swap.ts): the restored tables
 * take the live ones' places, one short transaction each.
 */
import type { Client } from 'pg';
import { derivedName, ident, literal, qualified } from './names';
import { PgProcesses, connect, dbConninfo, libpqEnv } from './process';
import { TABLE_ROLES, checkRoles, type RoleReference } from './roles';
import { agreedEqualities, keyEqualities, keyMatch, rowKeyColumns } from './row-key';
import { swapRefusals, swapTable, type SwapResult, type SwapTable } from './tables-swap';
import { tableChecksums, type TableCheck } from './verify';
import { START_ENV, formatTableName, type TableName } from '../../../src/contract';
import type { PgTarget, RestoredTable, TableChanges, TablePath, TableRecoveryOptions, TableRecoveryResult } from '../ports';

/** How long a swap waits for the live table's lock before giving up (it then changes nothing): queries queue behind the wait. */
export const SWAP_LOCK_TIMEOUT_MS = 5_000;

/** The table that holds the change report in `pitr_<stamp>`. */
export const CHANGES_TABLE = 'changes';

/** `pitr_<stamp>`: the schema a table recovery creates on the original. */
export function tableSchemaName(stamp: string): string {
  return `pitr_${stamp}`;
}

const USER_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

/** A table (or partitioned table) in the point-in-time copy. */
export interface CatalogTable {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  /** `r` or `p`. */
  readonly kind: string;
  readonly isPartition: boolean;
}

/** What TABLES resolved to at T: the named tables, and every table that moves (with partitions). */
export interface ResolvedTables {
  /** Tables the user named (directly or by `schema.*`): one change report each. */
  readonly chosen: readonly CatalogTable[];
  /** Chosen tables plus the partitions they bring, with the partitioned table each partition belongs to. */
  readonly moving: ReadonlyArray<CatalogTable & { readonly partitionOf?: CatalogTable }>;
}

/** Thrown when a name in TABLES does not resolve at T; nothing on the original was changed. */
export class TableNameError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`${problems.join(' ')} Nothing on the original was changed.`);
    this.name = 'TableNameError';
  }
}

/** Every user table in the database `client` is connected to (not extension members, not temporary). */
export async function listCatalogTables(client: Client): Promise<CatalogTable[]> {
  const { rows } = await client.query<{ oid: number; schema: string; name: string; kind: string; part: boolean }>(`
    SELECT c.oid::int AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS kind, c.relispartition AS part
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't' AND ${USER_SCHEMAS}
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
     ORDER BY 2, 3`);
  return rows.map((r) => ({ oid: r.oid, schema: r.schema, name: r.name, kind: r.kind, isPartition: r.part }));
}

/**
 * Resolves TABLES against the tables at T (`atT`). `now` (the original's
 * tables) only explains a miss: a name that exists now but not at T was
 * created after T. Every miss lists the closest names that existed at T.
 */
export function resolveTables(
  names: readonly TableName[], atT: readonly CatalogTable[], now: readonly CatalogTable[], partitions: ReadonlyMap<number, readonly number[]>,
): ResolvedTables {
  const problems: string[] = [];
  const chosen: CatalogTable[] = [];
  const add = (t: CatalogTable): void => {
    if (!chosen.some((c) => c.oid === t.oid)) chosen.push(t);
  };
  const known = atT.map((t) => formatTableName({ schema: t.schema, table: t.name }));
  for (const name of names) {
    const asked = formatTableName(name);
    if (name.table === undefined) {
      const inSchema = atT.filter((t) => t.schema === name.schema && !t.isPartition);
      if (inSchema.length > 0) {
        inSchema.forEach(add);
        continue;
      }
      const schemas = [...new Set(atT.map((t) => t.schema))];
      const close = closest(name.schema, schemas).map((s) => `${formatTableName({ schema: s })}`);
      problems.push(`TABLES: ${asked} matches no table: schema ${JSON.stringify(name.schema)} held no table at the restore time; `
        + `${close.length > 0 ? `close matches that existed then: ${close.join(', ')}` : `schemas with tables then: ${schemas.map((s) => JSON.stringify(s)).join(', ') || 'none'}`}.`);
      continue;
    }
    const found = atT.find((t) => t.schema === name.schema && t.name === name.table);
    if (found) {
      add(found);
      continue;
    }
    const createdAfter = now.some((t) => t.schema === name.schema && t.name === name.table);
    // Close as a whole, or the same (or a close) table name in another schema.
    const tableName = name.table;
    const sameName = atT.filter((t) => closest(tableName, [t.name]).length > 0).map((t) => formatTableName({ schema: t.schema, table: t.name }));
    const close = [...new Set([...closest(asked, known), ...sameName])].slice(0, 5);
    problems.push(`TABLES: ${asked} did not exist at the restore time${createdAfter ? ' (it exists now, so it was created after the restore time: there is nothing to bring back)' : ''}; `
      + `${close.length > 0 ? `close matches that existed then: ${close.join(', ')}` : 'no table with a similar name existed then'}.`);
  }
  if (problems.length > 0) throw new TableNameError(problems);

  const byOid = new Map(atT.map((t) => [t.oid, t]));
  const moving: Array<CatalogTable & { partitionOf?: CatalogTable }> = [];
  const seen = new Set<number>();
  for (const table of chosen) {
    if (!seen.has(table.oid)) {
      seen.add(table.oid);
      moving.push(table);
    }
    for (const oid of partitions.get(table.oid) ?? []) {
      const part = byOid.get(oid);
      if (part && !seen.has(oid)) {
        seen.add(oid);
        moving.push({ ...part, partitionOf: table });
      }
    }
  }
  return { chosen, moving };
}

/** Up to five of `candidates` closest to `word` by edit distance, close enough to be a typo or a case slip. */
export function closest(word: string, candidates: readonly string[]): string[] {
  const limit = Math.max(2, Math.floor(word.length / 3));
  return candidates
    .map((c) => ({ c, d: Math.min(levenshtein(word, c), levenshtein(word.toLowerCase(), c.toLowerCase()) + 1) }))
    // A cut-short name (`bill` for `billing`) is as likely a slip as a typo.
    .filter((x) => x.d <= limit || (word.length >= 3 && x.c.toLowerCase().startsWith(word.toLowerCase())))
    .sort((a, b) => a.d - b.d || (a.c < b.c ? -1 : 1))
    .slice(0, 5)
    .map((x) => x.c);
}

export function levenshtein(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length];
}

/** For each partitioned table, every partition below it (all levels). */
async function partitionTree(client: Client, tables: readonly CatalogTable[]): Promise<Map<number, number[]>> {
  const out = new Map<number, number[]>();
  for (const t of tables.filter((x) => x.kind === 'p')) {
    const { rows } = await client.query<{ oid: number }>('SELECT relid::oid::int AS oid FROM pg_partition_tree($1::oid) WHERE relid <> $1::oid::regclass', [t.oid]);
    out.set(t.oid, rows.map((r) => r.oid));
  }
  return out;
}

/** The names the moving tables get in `pitr_<stamp>`: their own, or `<schema>__<name>` where two would collide. */
export function restoredNames(
  moving: ReadonlyArray<{ readonly schema: string; readonly name: string }>, reserved: readonly string[] = [CHANGES_TABLE],
): string[] {
  const count = new Map<string, number>();
  for (const t of moving) count.set(t.name, (count.get(t.name) ?? 0) + 1);
  const first = moving.map((t) => ((count.get(t.name) ?? 0) > 1 || reserved.includes(t.name) ? derivedName(`${t.schema}__${t.name}`, '') : t.name));
  // A chosen table may itself be called `<schema>__<name>`: number any name that is still taken.
  const taken = new Set<string>(reserved);
  return first.map((name) => {
    let unique = name;
    for (let i = 2; taken.has(unique); i++) unique = derivedName(name, `_${i}`);
    taken.add(unique);
    return unique;
  });
}

/**
 * Before the restored objects: the schema, owned by the user who restores,
 * with USAGE and CREATE for the roles that will own objects in it.
 */
export function restorePrologue(schema: string, owners: readonly string[]): string {
  const grant = owners.length > 0 ? ` GRANT USAGE, CREATE ON SCHEMA ${ident(schema)} TO ${owners.map(ident).join(', ')};` : '';
  return `CREATE SCHEMA ${ident(schema)};${grant}`;
}

/**
 * After them, in the same transaction: the owner roles keep USAGE (to reach
 * their own tables, e.g. for the undo SQL after SET ROLE), not CREATE, so
 * only the restoring user can create in the schema.
 */
export function restoreEpilogue(schema: string, owners: readonly string[]): string {
  return owners.length > 0 ? `REVOKE CREATE ON SCHEMA ${ident(schema)} FROM ${owners.map(ident).join(', ')};` : 'SELECT 1;';
}

/** The PostgreSQL table path. */
export class PgTablePath implements TablePath {
  async recoverTables(source: PgTarget, target: PgTarget, options: TableRecoveryOptions): Promise<TableRecoveryResult> {
    const { log, database, stamp } = options;
    const schema = tableSchemaName(stamp);
    const started = Date.now();
    const processes = new PgProcesses(options.signal);
    const copy = await connect(source, database);
    let original: Client | undefined;
    let restored = false;
    const swapped: SwapResult[] = [];
    try {
      try {
        original = await connect(target, database);
      } catch (err) {
        throw new Error(`the database ${JSON.stringify(database)} existed at the restore time but cannot be opened on the original now (${(err as Error).message}); `
          + 'tables are restored beside the live ones, in the same database: if it was dropped, recover the whole database instead (leave TABLES empty). Nothing on the original was changed.');
      }
      const resolved = await log.step('resolve the tables at the restore time', async () => {
        const atT = await listCatalogTables(copy);
        const result = resolveTables(options.tables, atT, await listCatalogTables(original!), await partitionTree(copy, atT));
        const exists = await original!.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
        if (exists.rowCount) throw new Error(`schema ${ident(schema)} already exists in ${JSON.stringify(database)} on the original; it belongs to another run with the same stamp. Nothing on the original was changed.`);
        for (const t of result.moving) {
          const partOf = t.partitionOf ? ` (partition of ${formatTableName({ schema: t.partitionOf.schema, table: t.partitionOf.name })})` : '';
          log.info(`${formatTableName({ schema: t.schema, table: t.name })}${t.kind === 'p' ? ' (partitioned)' : ''}${partOf}`);
        }
        return result;
      });
      const owners = await log.step('check on the original the roles the restored tables name', async () => {
        const references = (await copy.query<RoleReference>(TABLE_ROLES, [resolved.moving.map((t) => t.oid)])).rows;
        await checkRoles(original!, references, { database, user: target.user, where: `${target.host}:${target.port}` });
        const others = references.filter((r) => r.owns && r.role !== target.user).map((r) => r.role);
        log.info(others.length > 0
          ? `owner roles of the restored objects: ${others.join(', ')} (${target.user} acts as each; they may create in ${schema} only while the restore gives them their objects)`
          : `the restored objects are owned by ${target.user}`);
        return others;
      });
      const names = restoredNames(resolved.moving);
      const leftOut = await log.step(`move them into ${schema} on the point-in-time copy`, async () => {
        try {
          return await this.isolate(copy, resolved, names, schema);
        } catch (err) {
          const e = err as Error & { code?: string };
          // 42501 insufficient_privilege: the usual cause on RDS, where the master user is not a superuser.
          const hint = e.code === '42501'
            ? ' The master user needs CREATE on the database and must own the chosen tables or be a member of their owner role (GRANT <owner> TO <master user>).'
            : '';
          throw new Error(`the tables could not be moved into ${ident(schema)} on the point-in-time copy: ${e.message}.${hint} Nothing on the original was changed.`);
        }
      });
      for (const line of leftOut) log.info(`left out: ${line}`);
      processes.throwIfAborted();
      await log.step(`copy ${schema} to the original (pg_dump -n | pg_restore -n | psql --single-transaction)`, async () => {
        await processes.pipe(
          { bin: 'pg_dump', args: ['-Fc', '-Z0', '-n', ident(schema), '--no-publications', '--no-subscriptions', '-d', dbConninfo(database)], env: libpqEnv(source) },
          // -n leaves out the schema itself: it is created below, in the same transaction, with CREATE for the owner roles
          // (ALTER ... OWNER TO needs the new owner to have CREATE on the schema, and a dump grants on a schema only at its very end).
          { bin: 'pg_restore', args: ['-n', schema, '-f', '-'], env: libpqEnv({ ...target, password: undefined }) },
          {
            bin: 'psql',
            args: ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction', '-c', restorePrologue(schema, owners), '-f', '-', '-c', restoreEpilogue(schema, owners), '-d', dbConninfo(database)],
            env: libpqEnv(target),
          },
        );
        restored = true;
      });
      const tables = await log.step(`verify ${schema} against the point-in-time copy`, () => this.verify(copy, original!, resolved, names, schema));
      const verified = tables.every((t) => t.verified);
      if (!verified) {
        const bad = tables.filter((t) => !t.verified).map((t) => t.restoredAs);
        await original.query(`DROP SCHEMA ${ident(schema)} CASCADE`);
        restored = false;
        throw new Error(`verification failed for ${bad.join(', ')}: the restored content differs from the point-in-time copy; schema ${ident(schema)} was dropped again. No live table was changed.`);
      }
      const copyMs = Date.now() - started;
      const changes = await log.step('report changes since the restore time', () => this.report(original!, resolved, names, schema, log));
      if (options.mode !== 'swap') return { database, schema, tables, leftOut, changes, verified, copyMs };
      const pairs: SwapTable[] = resolved.chosen.map((t) => ({
        live: { schema: t.schema, name: t.name }, restored: { schema, name: names[resolved.moving.findIndex((m) => m.oid === t.oid)] },
      }));
      await log.step('check what depends on the live tables', async () => {
        const refusals: string[] = [];
        for (const pair of pairs) refusals.push(...await swapRefusals(original!, pair));
        if (refusals.length > 0) {
          throw new Error(`${START_ENV.TABLE_MODE}=swap refused, because:\n${refusals.map((r) => `  - ${r}`).join('\n')}\nNo live table was changed; `
            + `the tables at T are in schema ${ident(schema)} beside the live ones, with the change report and the undo SQL. Remove or move those objects and run again, or use ${START_ENV.TABLE_MODE}=side-by-side.`);
        }
        log.info('nothing else depends on the live tables by OID: they can be swapped');
      });
      for (const pair of pairs) {
        const result = await log.step(`swap in ${formatTableName({ schema: pair.live.schema, table: pair.live.name })}`, () => swapTable(original!, pair, SWAP_LOCK_TIMEOUT_MS));
        log.info(`${result.table} is now the table at T; the live table is kept as ${result.before}; unavailable for ${result.windowMs} ms`);
        swapped.push(result);
      }
      return { database, schema, tables, leftOut, changes, verified, copyMs, swapped };
    } catch (err) {
      processes.killAll();
      const error = err as Error;
      if (swapped.length > 0) {
        error.message += ` Swapped before the failure (each in a transaction of its own): ${swapped.map((w) => `${w.table} (live table kept as ${w.before})`).join(', ')}; `
          + 'the other live tables were not changed.';
      } else if (restored && !error.message.includes(ident(schema))) {
        error.message += ` Schema ${ident(schema)} on the original holds the restored tables and is kept; no live table was changed.`;
      }
      throw err;
    } finally {
      processes.dispose();
      await copy.end().catch(() => undefined);
      await original?.end().catch(() => undefined);
    }
  }

  /**
   * On the point-in-time copy (disposable): cuts what ties the moving tables
   * to the rest of the database, renames what would collide, and moves them
   * into `schema`. Returns what was left out, for the log.
   */
  private async isolate(copy: Client, resolved: ResolvedTables, names: readonly string[], schema: string): Promise<string[]> {
    const oids = resolved.moving.map((t) => t.oid);
    const leftOut: string[] = [];
    await copy.query('BEGIN');
    await copy.query(`CREATE SCHEMA ${ident(schema)}`);
    // A parent outside the set: the restored table would otherwise join the live hierarchy (pg_dump writes ATTACH PARTITION / INHERITS).
    const parents = await copy.query<{ child: string; parent: string; part: boolean }>(`
      SELECT i.inhrelid::regclass::text AS child, i.inhparent::regclass::text AS parent, c.relispartition AS part
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhrelid = ANY($1::oid[]) AND NOT i.inhparent = ANY($1::oid[])`, [oids]);
    for (const p of parents.rows) {
      await copy.query(p.part ? `ALTER TABLE ${p.parent} DETACH PARTITION ${p.child}` : `ALTER TABLE ${p.child} NO INHERIT ${p.parent}`);
      leftOut.push(`${p.child} is restored on its own, without its ${p.part ? 'partitioned table' : 'parent'} ${p.parent} (not in TABLES)`);
    }
    const fks = await copy.query<{ tbl: string; name: string; def: string }>(`
      SELECT conrelid::regclass::text AS tbl, conname AS name, pg_get_constraintdef(oid) AS def
        FROM pg_constraint
       WHERE contype = 'f' AND conparentid = 0 AND conrelid = ANY($1::oid[]) AND NOT confrelid = ANY($1::oid[])
       ORDER BY 1, 2`, [oids]);
    for (const fk of fks.rows) {
      await copy.query(`ALTER TABLE ${fk.tbl} DROP CONSTRAINT ${ident(fk.name)}`);
      leftOut.push(`foreign key ${ident(fk.name)} on ${fk.tbl} (${fk.def}): it points outside TABLES; restored without it`);
    }
    // Triggers run business logic (and may call functions that no longer exist): a copy kept for reading and putting rows back has none.
    const triggers = await copy.query<{ tbl: string; name: string }>(`
      SELECT tgrelid::regclass::text AS tbl, tgname AS name FROM pg_trigger
       WHERE NOT tgisinternal AND tgparentid = 0 AND tgrelid = ANY($1::oid[]) ORDER BY 1, 2`, [oids]);
    for (const t of triggers.rows) {
      await copy.query(`DROP TRIGGER ${ident(t.name)} ON ${t.tbl}`);
      leftOut.push(`trigger ${ident(t.name)} on ${t.tbl}: restored tables get no triggers`);
    }
    // Indexes and owned sequences move with their table and share its new schema's namespace: rename those that would collide.
    const related = await copy.query<{ kind: string; schema: string; name: string }>(`
      SELECT c.relkind::text AS kind, n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = ANY($1::oid[])
                       UNION SELECT objid FROM pg_depend WHERE classid = 'pg_class'::regclass AND refclassid = 'pg_class'::regclass
                          AND refobjid = ANY($1::oid[]) AND deptype IN ('a', 'i') AND objid IN (SELECT oid FROM pg_class WHERE relkind = 'S'))
       ORDER BY c.oid`, [oids]);
    const taken = new Set<string>([...names, CHANGES_TABLE]);
    const count = new Map<string, number>();
    for (const r of related.rows) count.set(r.name, (count.get(r.name) ?? 0) + 1);
    for (const r of related.rows) {
      if ((count.get(r.name) ?? 0) > 1 || taken.has(r.name)) {
        let name = derivedName(`${r.schema}__${r.name}`, '');
        for (let i = 2; taken.has(name); i++) name = derivedName(`${r.schema}__${r.name}`, `_${i}`);
        await copy.query(`ALTER ${r.kind === 'S' ? 'SEQUENCE' : 'INDEX'} ${qualified(r.schema, r.name)} RENAME TO ${ident(name)}`);
        taken.add(name);
      } else {
        taken.add(r.name);
      }
    }
    for (const [i, t] of resolved.moving.entries()) {
      if (names[i] !== t.name) await copy.query(`ALTER TABLE ${qualified(t.schema, t.name)} RENAME TO ${ident(names[i])}`);
      await copy.query(`ALTER TABLE ${qualified(t.schema, names[i])} SET SCHEMA ${ident(schema)}`);
    }
    await copy.query('COMMIT');
    return leftOut;
  }

  /** Each restored table and sequence against the point-in-time copy, by content (verify.ts checksums). */
  private async verify(copy: Client, original: Client, resolved: ResolvedTables, names: readonly string[], schema: string): Promise<RestoredTable[]> {
    const checks: TableCheck[] = resolved.moving.map((_, i) => ({ schema, name: names[i], bytes: 0 })).filter((_, i) => resolved.moving[i].kind === 'r');
    // tableChecksums reads each table under a savepoint: one read-only transaction per side.
    const checksums = async (client: Client): Promise<Record<string, string>> => {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      try {
        return await tableChecksums(client, checks);
      } finally {
        await client.query('COMMIT');
      }
    };
    const [atT, now] = [await checksums(copy), await checksums(original)];
    const sequences = `SELECT format('%I.%I', n.nspname, c.relname) AS name, s.seqrelid FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
                         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 ORDER BY 1`;
    const seqState = async (client: Client): Promise<string> => {
      const out: string[] = [];
      for (const s of (await client.query<{ name: string }>(sequences, [schema])).rows) {
        const { rows } = await client.query<{ v: string; called: boolean }>(`SELECT last_value::text AS v, is_called AS called FROM ${s.name}`);
        out.push(`${s.name}=${rows[0].v}/${rows[0].called}`);
      }
      return out.join(', ');
    };
    const sequencesMatch = (await seqState(copy)) === (await seqState(original));
    const shown = (s: string, n: string): string => formatTableName({ schema: s, table: n });
    return resolved.moving.map((t, i) => {
      const key = qualified(schema, names[i]);
      const partitionOf = t.partitionOf ? shown(t.partitionOf.schema, t.partitionOf.name) : undefined;
      if (t.kind !== 'r') {
        const parts = resolved.moving.filter((p) => p.partitionOf?.oid === t.oid && p.kind === 'r').map((p) => qualified(schema, names[resolved.moving.indexOf(p)]));
        const rows = parts.reduce((sum, p) => sum + Number((atT[p] ?? '0/').split('/')[0]), 0);
        return {
          source: shown(t.schema, t.name),
          restoredAs: shown(schema, names[i]),
          partitionOf,
          rows,
          verified: sequencesMatch && parts.every((p) => atT[p] === now[p]),
        };
      }
      return {
        source: shown(t.schema, t.name),
        restoredAs: shown(schema, names[i]),
        partitionOf,
        rows: Number(atT[key].split('/')[0]),
        verified: sequencesMatch && atT[key] === now[key] && now[key] !== 'missing',
      };
    });
  }

  /** The change report, logged and stored in `pitr_<stamp>.changes`; its SQL is never executed here. */
  private async report(original: Client, resolved: ResolvedTables, names: readonly string[], schema: string, log: TableRecoveryOptions['log']): Promise<TableChanges[]> {
    const out: TableChanges[] = [];
    // One snapshot for every count, so the numbers of one report agree with each other.
    await original.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      for (const t of resolved.chosen) {
        const name = names[resolved.moving.findIndex((m) => m.oid === t.oid)];
        out.push(await tableChanges(original, { schema: t.schema, name: t.name }, { schema, name }));
      }
    } finally {
      await original.query('COMMIT');
    }
    await original.query(`CREATE TABLE ${qualified(schema, CHANGES_TABLE)} (
      live_table text NOT NULL, restored_as text NOT NULL, key_columns text[], rows_at_t bigint NOT NULL, rows_now bigint,
      deleted_since_t bigint NOT NULL, inserted_since_t bigint NOT NULL, changed_since_t bigint, notes text, undo_insert_sql text, undo_update_sql text, undo_role text)`);
    await original.query(`COMMENT ON TABLE ${qualified(schema, CHANGES_TABLE)} IS ${literal('cdk-rds-pitr change report: each chosen table at the restore time against the live table when it was written. '
      + 'The undo SQL was never executed; read it, then run it yourself.')}`);
    for (const c of out) {
      await original.query(`INSERT INTO ${qualified(schema, CHANGES_TABLE)} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        [c.table, c.restoredAs, c.key ?? null, c.rowsAtT, c.rowsNow ?? null, c.deleted, c.inserted, c.changed ?? null, c.notes.join(' ') || null, c.undoInsertSql ?? null, c.undoUpdateSql ?? null, c.undoRole ?? null]);
      log.info(`${c.table} (restored as ${c.restoredAs}): ${c.rowsAtT} rows at T, ${c.rowsNow ?? 'no'} rows now; since T: ${c.deleted} deleted, ${c.inserted} inserted, `
        + `${c.changed === undefined ? 'changed unknown (no key)' : `${c.changed} changed`}${c.key ? ` (rows paired by ${c.key.map(ident).join(', ')})` : ''}`);
      for (const note of c.notes) log.info(`  note: ${note}`);
      if (c.undoInsertSql) log.info(`  to put back the ${c.deleted} rows deleted since T (not executed):\n${c.undoInsertSql}`);
      if (c.undoUpdateSql) log.info(`  to put back T's content of the ${c.changed} rows changed since T (not executed):\n${c.undoUpdateSql}`);
    }
    log.info(`the report is stored in ${qualified(schema, CHANGES_TABLE)}; drop ${ident(schema)} (DROP SCHEMA ${ident(schema)} CASCADE) once you no longer need it`);
    return out;
  }
}

interface Column {
  readonly name: string;
  /** pg_attribute.attgenerated: 's' for a generated column. */
  readonly generated: string;
  /** pg_attribute.attidentity: 'a' (ALWAYS), 'd' (BY DEFAULT) or ''. */
  readonly identity: string;
}

async function columnsOf(client: Client, table: string): Promise<Column[]> {
  const { rows } = await client.query<Column>(`
    SELECT attname AS name, attgenerated::text AS generated, attidentity::text AS identity FROM pg_attribute
     WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, [table]);
  return rows;
}

/** Restored (at T) against live (now), and the undo SQL. Runs inside the report's read-only snapshot. */
export async function tableChanges(
  client: Client, liveTable: { schema: string; name: string }, restoredTable: { schema: string; name: string },
): Promise<TableChanges> {
  const live = qualified(liveTable.schema, liveTable.name);
  const restored = qualified(restoredTable.schema, restoredTable.name);
  const shown = {
    table: formatTableName({ schema: liveTable.schema, table: liveTable.name }),
    restoredAs: formatTableName({ schema: restoredTable.schema, table: restoredTable.name }),
  };
  const count = async (sql: string): Promise<number> => Number((await client.query<{ n: string }>(sql)).rows[0].n);
  const rowsAtT = await count(`SELECT count(*) AS n FROM ${restored}`);
  const notes: string[] = [];
  const exists = (await client.query<{ r: string | null }>('SELECT to_regclass($1)::text AS r', [live])).rows[0].r !== null;
  if (!exists) {
    notes.push(`the live table ${live} does not exist now (dropped or renamed after T); every row at T counts as deleted. `
      + `To put the whole table back as it was at T: ALTER TABLE ${restored} SET SCHEMA <schema>, then rename it if needed.`);
    return { ...shown, rowsAtT, deleted: rowsAtT, inserted: 0, notes };
  }
  const rowsNow = await count(`SELECT count(*) AS n FROM ${live}`);
  const runAs = await undoRunAs(client, live, restored, shown.table);
  const atT = await columnsOf(client, restored);
  const now = await columnsOf(client, live);
  const nowByName = new Map(now.map((c) => [c.name, c]));
  const common = atT.filter((c) => nowByName.has(c.name));
  const onlyAtT = atT.filter((c) => !nowByName.has(c.name)).map((c) => c.name);
  const onlyNow = now.filter((c) => !atT.some((a) => a.name === c.name)).map((c) => c.name);
  if (onlyAtT.length > 0) notes.push(`columns at T that the live table no longer has, left out of the comparison and the undo SQL: ${onlyAtT.map(ident).join(', ')}.`);
  if (onlyNow.length > 0) notes.push(`columns added after T, left out of the comparison (restored rows get their defaults): ${onlyNow.map(ident).join(', ')}.`);
  const rowText = (alias: string): string => `ROW(${common.map((c) => `${alias}.${ident(c.name)}`).join(', ')})::text`;
  const key = await rowKeyColumns(client, restored);
  if (!key || !key.every((k) => nowByName.has(k))) {
    notes.push(key
      ? `the key (${key.map(ident).join(', ')}) is not in the live table any more: rows cannot be paired, so there are counts only and no undo SQL.`
      : 'no primary key or unique key over NOT NULL columns: rows cannot be paired, so "changed" cannot be told from "deleted and inserted"; counts by content only, no undo SQL.');
    const deleted = await count(`SELECT count(*) AS n FROM (SELECT ${rowText('r')} FROM ${restored} r EXCEPT ALL SELECT ${rowText('l')} FROM ${live} l) x`);
    const inserted = await count(`SELECT count(*) AS n FROM (SELECT ${rowText('l')} FROM ${live} l EXCEPT ALL SELECT ${rowText('r')} FROM ${restored} r) x`);
    return { ...shown, rowsAtT, rowsNow, deleted, inserted, notes };
  }
  // Each key column's own equality, schema-qualified: the runner's empty search_path does not find citext's `=`.
  const keyEq = agreedEqualities(await keyEqualities(client, restored, key), await keyEqualities(client, live, key));
  const match = keyMatch('l', 'r', key, keyEq);
  const deleted = await count(`SELECT count(*) AS n FROM ${restored} r WHERE NOT EXISTS (SELECT 1 FROM ${live} l WHERE ${match})`);
  const inserted = await count(`SELECT count(*) AS n FROM ${live} l WHERE NOT EXISTS (SELECT 1 FROM ${restored} r WHERE ${match})`);
  const changed = await count(`SELECT count(*) AS n FROM ${restored} r JOIN ${live} l ON ${match} WHERE ${rowText('r')} IS DISTINCT FROM ${rowText('l')}`);

  // Generated columns are computed by the live table; identity ALWAYS needs OVERRIDING SYSTEM VALUE to take T's value.
  const writable = common.filter((c) => nowByName.get(c.name)!.generated === '');
  const generated = common.filter((c) => nowByName.get(c.name)!.generated !== '').map((c) => c.name);
  if (generated.length > 0) notes.push(`generated columns ${generated.map(ident).join(', ')} are computed by the live table, not copied.`);
  const triggers = (await client.query<{ name: string }>('SELECT tgname AS name FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal ORDER BY 1', [live])).rows;
  if (triggers.length > 0) notes.push(`the live table has triggers (${triggers.map((x) => ident(x.name)).join(', ')}): the undo SQL fires them, as any write would.`);
  const overriding = writable.some((c) => nowByName.get(c.name)!.identity === 'a') ? ' OVERRIDING SYSTEM VALUE' : '';
  const cols = writable.map((c) => ident(c.name)).join(', ');
  const undoInsertSql = deleted === 0 ? undefined : [
    `-- ${live}: put back the ${deleted} rows that existed at T and were deleted since (rows paired by ${key.map(ident).join(', ')}).`,
    ...runAs.comment,
    `INSERT INTO ${live} (${cols})${overriding}`,
    `SELECT ${writable.map((c) => `r.${ident(c.name)}`).join(', ')} FROM ${restored} r`,
    ` WHERE NOT EXISTS (SELECT 1 FROM ${live} l WHERE ${match});`,
  ].join('\n');
  const settable = writable.filter((c) => !key.includes(c.name) && nowByName.get(c.name)!.identity !== 'a');
  const identityAlways = writable.filter((c) => !key.includes(c.name) && nowByName.get(c.name)!.identity === 'a').map((c) => c.name);
  if (identityAlways.length > 0) notes.push(`identity columns ${identityAlways.map(ident).join(', ')} (GENERATED ALWAYS) cannot be updated; the UPDATE leaves them as they are.`);
  const undoUpdateSql = !changed || settable.length === 0 ? undefined : [
    `-- ${live}: put back T's content of the ${changed} rows changed since T (same key, different content).`,
    ...runAs.comment,
    `UPDATE ${live} l SET ${settable.map((c) => `${ident(c.name)} = r.${ident(c.name)}`).join(', ')}`,
    `  FROM ${restored} r`,
    ` WHERE ${match} AND ${rowText('r')} IS DISTINCT FROM ${rowText('l')};`,
  ].join('\n');
  return { ...shown, key, rowsAtT, rowsNow, deleted, inserted, changed, notes, undoInsertSql, undoUpdateSql, undoRole: runAs.role };
}

/**
 * As whom the undo SQL runs: the master user, with the privileges of the
 * live table's owner role. A comment line says so when the owner is another
 * role, and says to SET ROLE first when the master user does not have those
 * privileges by membership (a membership without INHERIT).
 */
async function undoRunAs(client: Client, live: string, restored: string, shownLive: string): Promise<{ role: string; comment: string[] }> {
  const { rows } = await client.query<{ owner: string; me: string; can: boolean }>(`
    SELECT pg_get_userbyid(c.relowner) AS owner, current_user AS me,
           has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE') AND has_table_privilege($2::regclass, 'SELECT') AS can
      FROM pg_class c WHERE c.oid = $1::regclass`, [live, restored]);
  const { owner, me, can } = rows[0];
  if (owner === me) return { role: owner, comment: [] };
  const setRole = `SET ROLE ${ident(owner)}; (then RESET ROLE;)`;
  return {
    role: owner,
    comment: [can
      ? `-- runs as ${me}: ${shownLive} belongs to ${owner}, whose privileges ${me} has as a member; without them: ${setRole}`
      : `-- ${shownLive} belongs to ${owner}, whose privileges ${me} does not have here: run ${setRole} (${me} must be a member of ${owner})`],
  };
}
