/**
 * The dump's table of contents, split into the lists pg_restore is run with
 * (restoreLists), and pg_restore of one of them into the new database (pgRestore).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from 'pg';
import { ident } from '../names';
import { dbConninfo, libpqEnv } from '../process';
import { withClient } from './sessions';
import type { DatabaseCopy, IndexWork, RestoreLists } from './types';

/**
 * The archive's table of contents as restore lists: the main one, minus what
 * a non-superuser cannot restore on managed PostgreSQL; and, per streamed
 * table, its own indexes and primary key/unique/exclusion constraints, so
 * they are built as soon as its data is in while other tables still stream
 * (pg_restore -j schedules a whole archive the same way). Those entries are
 * taken out of the main list.
 */
export async function restoreLists(source: Client, { target, processes, dumpDir, plan }: DatabaseCopy): Promise<RestoreLists> {
  const { streamed } = plan;
  const withoutEventTriggers = plan.hazards.leftOutEventTriggers.length > 0;
  const { stdout } = await processes.run('pg_restore', ['-l', dumpDir], { env: libpqEnv(target) });
  const superuser = await withClient(target, target.maintenanceDatabase, async (c) => (await c.query<{ su: string }>("SELECT current_setting('is_superuser') AS su")).rows[0].su === 'on');
  // COMMENT ON EXTENSION needs extension ownership the master user of RDS does not have; CREATE EXTENSION sets the comment anyway.
  const lines = stdout.split('\n')
    .filter((line) => superuser || !/^\d+; \d+ \d+ COMMENT - EXTENSION /.test(line))
    // The accepted hazard event-triggers: this user cannot create them.
    .filter((line) => !withoutEventTriggers || !/^\d+; \d+ \d+ (COMMENT - )?EVENT TRIGGER /.test(line));

  const entry = /^(\d+); \d+ (\d+) (INDEX|CONSTRAINT) /;
  const oids = lines.map((l) => entry.exec(l)?.[2]).filter((o): o is string => o !== undefined);
  const owner = new Map<string, string>();
  /** Entry OID -> size of its index on the point-in-time copy: the larger ones are built first. */
  const indexBytes = new Map<string, number>();
  const tableOids = streamed.filter((t) => !t.partition).map((t) => t.oid);
  if (oids.length > 0 && tableOids.length > 0) {
    const { rows } = await source.query<{ oid: string; rel: string; bytes: string }>(`
      SELECT indexrelid::text AS oid, indrelid::text AS rel, pg_relation_size(indexrelid)::text AS bytes
        FROM pg_index WHERE indexrelid = ANY($1::oid[]) AND indrelid = ANY($2::oid[])
      UNION ALL SELECT oid::text, conrelid::text, pg_relation_size(conindid)::text
        FROM pg_constraint WHERE oid = ANY($1::oid[]) AND contype IN ('p', 'u', 'x') AND conrelid = ANY($2::oid[])`,
    [oids, tableOids]);
    for (const r of rows) {
      owner.set(r.oid, r.rel);
      indexBytes.set(r.oid, Number(r.bytes));
    }
  }
  // Primary keys and unique constraints that can be built as a plain unique index and attached to it:
  // btree, on columns only, default ordering, immediate, in the default tablespace, neither the clustering
  // nor the replica identity index (pg_dump appends those to the constraint's entry), nor on a table that
  // inherits (from PostgreSQL 18, `ADD PRIMARY KEY USING INDEX` makes the NOT NULL it inherits its own, which
  // `ADD PRIMARY KEY (...)` does not: the schema would differ). The index is named after the constraint, as
  // pg_dump's `ADD CONSTRAINT ... PRIMARY KEY (...)` would name it.
  const asIndex = new Map<string, IndexWork>();
  const ownedOids = [...owner.keys()];
  if (ownedOids.length > 0) {
    const { rows } = await source.query<{ oid: string; name: string; type: string; rel: string; indexdef: string }>(`
      SELECT o.oid::text AS oid, o.conname AS name, o.contype AS type, o.conrelid::regclass::text AS rel, pg_get_indexdef(o.conindid) AS indexdef
        FROM pg_constraint o JOIN pg_class i ON i.oid = o.conindid JOIN pg_index x ON x.indexrelid = o.conindid JOIN pg_am am ON am.oid = i.relam
       WHERE o.oid = ANY($1::oid[]) AND o.contype IN ('p', 'u') AND NOT o.condeferrable AND i.relname = o.conname AND i.reltablespace = 0
         AND am.amname = 'btree' AND x.indexprs IS NULL AND x.indpred IS NULL AND NOT x.indisclustered AND NOT x.indisreplident
         AND NOT EXISTS (SELECT 1 FROM unnest(x.indoption::int2[]) v WHERE v <> 0)
         AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = o.conrelid)`, [ownedOids]);
    for (const r of rows) {
      asIndex.set(r.oid, {
        kind: 'constraint',
        createIndex: r.indexdef,
        addConstraint: `ALTER TABLE ONLY ${r.rel} ADD CONSTRAINT ${ident(r.name)} ${r.type === 'p' ? 'PRIMARY KEY' : 'UNIQUE'} USING INDEX ${ident(r.name)}`,
      });
    }
  }
  const perTable = new Map<string, IndexWork[]>();
  const perTableLabels = new Map<string, string[]>();
  const main: string[] = [];
  // The comment or security label of an entry comes right after it, and has no section of its own: pg_restore
  // gives it the section of the entry before it in the list. Left in the main list without its object, it
  // would run in whatever section precedes it (pre-data, say) and fail: it goes with its table's entries.
  let labelsOf: string | undefined;
  for (const line of lines) {
    const oid = entry.exec(line)?.[2] ?? '';
    const rel = owner.get(oid);
    if (!rel && labelsOf && /^\d+; \d+ \d+ (COMMENT|SECURITY LABEL) /.test(line)) {
      perTableLabels.set(labelsOf, [...(perTableLabels.get(labelsOf) ?? []), line]);
      continue;
    }
    labelsOf = rel;
    if (!rel) {
      main.push(line);
      continue;
    }
    let work = asIndex.get(oid);
    if (!work) {
      const list = join(dumpDir, `restore-${oid}.list`);
      writeFileSync(list, `${line}\n`);
      work = { kind: 'entry', list };
    }
    perTable.set(rel, [...(perTable.get(rel) ?? []), { ...work, bytes: indexBytes.get(oid) ?? 0 }]);
  }
  const file = join(dumpDir, 'restore.list');
  writeFileSync(file, main.join('\n'));
  const labels = new Map<string, string>();
  for (const [rel, entries] of perTableLabels) {
    const list = join(dumpDir, `restore-${rel}-labels.list`);
    writeFileSync(list, entries.join('\n'));
    labels.set(rel, list);
  }
  for (const work of perTable.values()) work.sort((a, b) => (b.bytes ?? 0) - (a.bytes ?? 0));
  return { main: file, tables: perTable, labels };
}

/** pg_restore of `list` from the dump into the new database (`section` '' for a list of single entries). */
export function pgRestore(copy: DatabaseCopy, list: string, section: string, jobs: number, more: string[] = []): Promise<unknown> {
  return copy.processes.run('pg_restore', [
    ...(section ? [`--section=${section}`] : []), ...more, '--exit-on-error', '-j', String(jobs), '-L', list, '-d', dbConninfo(copy.into), copy.dumpDir,
  ], { env: libpqEnv(copy.target), captureStdout: false });
}
