/**
 * The original's catalog, as far as leftovers go: databases whose name
 * carries the runner's marker (`<db>__pitr_<stamp>`, `<db>__before_pitr_<stamp>`),
 * checked against the catalog, and dropping one of them without FORCE.
 */
import type { Client } from 'pg';
import { ident } from './names';
import { connect } from './process';
import { parseMarkedName } from '../../../src/contract';
import type { MarkedDatabase, OriginalCatalog, PgTarget } from '../ports';

export class PgOriginalCatalog implements OriginalCatalog {
  /**
   * The name is the marker; the catalog check is that the connecting user
   * (the master user, which creates every copy) has its owner's privileges
   * (owns it, or is a member of the owning role with INHERIT, as PostgreSQL
   * requires for DROP DATABASE) and that it is not a template. A swap keeps
   * the original's owner on the pre-recovery copy: on the usual RDS layout
   * that is the application's role, not the master user. A database that
   * merely looks alike but belongs to a role the master user cannot act as is
   * never listed, so never dropped.
   */
  async listMarked(target: PgTarget): Promise<MarkedDatabase[]> {
    const rows = await withClient(target, (c) => c.query<{ name: string; size: string; connections: number }>(
      `SELECT d.datname AS name, pg_database_size(d.oid)::text AS size,
              (SELECT count(*)::int FROM pg_stat_activity a WHERE a.datid = d.oid) AS connections
         FROM pg_database d
        WHERE NOT d.datistemplate AND pg_has_role(current_user, d.datdba, 'USAGE')
        ORDER BY d.datname`,
    ));
    const out: MarkedDatabase[] = [];
    for (const row of rows.rows) {
      const marked = parseMarkedName(row.name);
      if (marked) out.push({ ...marked, name: row.name, sizeBytes: Number(row.size), connections: row.connections });
    }
    return out;
  }

  /** Without FORCE on purpose: a session still connected (a writer we could not see) makes PostgreSQL refuse. */
  async drop(target: PgTarget, name: string): Promise<void> {
    await withClient(target, (c) => c.query(`DROP DATABASE ${ident(name)}`));
  }
}

async function withClient<T>(target: PgTarget, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await connect(target, target.maintenanceDatabase);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}
