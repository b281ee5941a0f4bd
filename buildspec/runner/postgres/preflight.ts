/**
 * The pre-flight's reads on the original (issue #19), behind the
 * OriginalInspector port: the same queries and messages the copy uses at T
 * (roles.ts, hazards.ts, tables-swap.ts), run against the databases and
 * tables as they are now. Read-only; every session is closed again.
 */
import type { Client } from 'pg';
import { checkRoleSettingsAlterable } from './copy/checks';
import { findHazards } from './hazards';
import { connect } from './process';
import { REFERENCED_ROLES, TABLE_ROLES, roleProblems, roleRefusal, type RoleReference } from './roles';
import { listCatalogTables, type CatalogTable } from './tables';
import { swapRefusals } from './tables-swap';
import { formatTableName, type Hazard, type Strategy, type TableName } from '../../../src/contract';
import type { OriginalInspector, PgTarget, PreflightHazards } from '../ports';

async function withClient<T>(target: PgTarget, database: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await connect(target, database);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The tables each name of TABLES stands for now (`schema.*`: the schema's tables, not partitions). */
function matchNow(names: readonly TableName[], now: readonly CatalogTable[]): Array<{ name: string; tables: CatalogTable[] }> {
  return names.map((n) => ({
    name: formatTableName(n),
    tables: n.table === undefined
      ? now.filter((t) => t.schema === n.schema && !t.isPartition)
      : now.filter((t) => t.schema === n.schema && t.name === n.table),
  }));
}

export class PgOriginalInspector implements OriginalInspector {
  async roleRefusal(original: PgTarget, database: string, tables?: readonly TableName[]): Promise<string | undefined> {
    return withClient(original, database, async (client) => {
      let references: RoleReference[];
      if (tables) {
        const found = matchNow(tables, await listCatalogTables(client)).flatMap((m) => m.tables.map((t) => t.oid));
        // A partitioned table brings its partitions, as the restore does.
        const { rows } = await client.query<{ oid: number }>(
          'SELECT DISTINCT p.relid::oid::int AS oid FROM unnest($1::oid[]) AS t(oid), pg_partition_tree(t.oid) p', [found]);
        references = (await client.query<RoleReference>(TABLE_ROLES, [[...new Set([...found, ...rows.map((r) => r.oid)])]])).rows;
      } else {
        references = (await client.query<RoleReference>(REFERENCED_ROLES)).rows;
      }
      const refusal = roleRefusal(await roleProblems(client, references), { database, user: original.user, where: `${original.host}:${original.port}` });
      if (refusal || tables) return refusal;
      // The database's per-role settings, which the copy gives the new database (copy/checks.ts).
      const { rows } = await client.query<{ role: string }>(`
        SELECT r.rolname AS role FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
         WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())`);
      return checkRoleSettingsAlterable(client, database, original.user, rows.map((r) => r.role)).then(() => undefined, (err: Error) => err.message);
    });
  }

  async hazards(original: PgTarget, database: string, strategy: Strategy, accepted: readonly Hazard[]): Promise<PreflightHazards> {
    return withClient(original, original.maintenanceDatabase, (onTarget) => withClient(original, database, (onDatabase) => findHazards({
      database,
      strategy,
      existsOnTarget: true,
      accepted,
      target: onTarget,
      source: onDatabase,
      onTargetDatabase: (other, fn) => withClient(original, other, fn),
      inspectingOriginal: true,
    })));
  }

  async tablesNow(original: PgTarget, database: string, tables: readonly TableName[]): Promise<Array<{ name: string; found: boolean }>> {
    return withClient(original, database, async (client) => matchNow(tables, await listCatalogTables(client))
      .map((m) => ({ name: m.name, found: m.tables.length > 0 })));
  }

  async tableSwapRefusals(original: PgTarget, database: string, tables: readonly TableName[]): Promise<string[]> {
    return withClient(original, database, async (client) => {
      const out: string[] = [];
      for (const m of matchNow(tables, await listCatalogTables(client))) {
        for (const t of m.tables) {
          const live = { schema: t.schema, name: t.name };
          out.push(...await swapRefusals(client, { live, restored: live }));
        }
      }
      return out;
    });
  }

  async sizeBytes(original: PgTarget, database: string, tables?: readonly TableName[]): Promise<number> {
    return withClient(original, database, async (client) => {
      if (!tables) return Number((await client.query<{ n: string }>('SELECT pg_database_size(current_database())::text AS n')).rows[0].n);
      const oids = matchNow(tables, await listCatalogTables(client)).flatMap((m) => m.tables.map((t) => t.oid));
      const { rows } = await client.query<{ n: string }>(
        'SELECT coalesce(sum(pg_total_relation_size(p.relid)), 0)::text AS n FROM (SELECT DISTINCT p.relid FROM unnest($1::oid[]) AS t(oid), pg_partition_tree(t.oid) p) p', [oids]);
      return Number(rows[0].n);
    });
  }
}
