/**
 * The checks before anything is written: the database exists on the
 * point-in-time copy, every role it references exists on the original and
 * can be acted as, its derived names are free, the dump fits on the build's
 * disk; its swap hazards; and room on the original.
 */
import { mkdirSync, statfsSync } from 'node:fs';
import type { ClientBase } from 'pg';
import { EXCLUDED_DATABASES, HAZARDS } from '../../../../src/contract';
import type { CopyOptions, PgTarget } from '../../ports';
import { findHazards } from '../hazards';
import { ident, keptName, restoredName } from '../names';
import { REFERENCED_ROLES, checkRoles } from '../roles';
import { readDatabaseProperties } from '../verify';
import { DISK_MARGIN, defaultStreamMinBytes } from './limits';
import { mib, withClient } from './sessions';
import type { DatabasePlan, PgDataPathSettings } from './types';

/** The databases a copy may name: every one that accepts connections, but templates and RDS's own. */
export async function listDatabases(source: PgTarget): Promise<string[]> {
  return withClient(source, source.maintenanceDatabase, async (client) => {
    const { rows } = await client.query<{ datname: string }>(
      'SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn AND datname <> ALL($1) ORDER BY datname',
      [[...EXCLUDED_DATABASES]],
    );
    return rows.map((r) => r.datname);
  });
}

/** What one database's copy will meet, checked before anything is written. */
export async function planDatabase(
  settings: PgDataPathSettings, source: PgTarget, target: PgTarget, database: string, options: CopyOptions,
): Promise<DatabasePlan> {
  const restoredAs = options.drill?.intoName(database) ?? restoredName(database, options.stamp);
  // A drill writes only to the temporary instance; the checks a recovery makes on the original still run there, read-only.
  const original = options.drill?.original ?? target;
  const keptAs = keptName(database, options.stamp);
  const streamMin = settings.streamMinBytes ?? defaultStreamMinBytes(source, target);

  const found = await withClient(source, source.maintenanceDatabase, (c) => readDatabaseProperties(c, database));
  if (!found) {
    const names = await listDatabases(source);
    throw new Error(`database ${JSON.stringify(database)} does not exist on the point-in-time copy (${source.host}:${source.port}); `
      + `databases there: ${names.map((n) => JSON.stringify(n)).join(', ') || 'none'}. Nothing was written to the original.`);
  }
  const sourceProperties = found;

  const inspected = await withClient(source, database, async (client) => {
    const roles = (await client.query<{ role: string; owns: boolean }>(REFERENCED_ROLES)).rows;
    const { rows } = await client.query<{ oid: string; partition: boolean; schema: string; name: string; columns: string[]; bytes: string; builtin: boolean }>(`
      SELECT c.oid::text AS oid, c.relispartition AS partition, n.nspname AS schema, c.relname AS name, pg_table_size(c.oid)::text AS bytes,
             -- Built-in types only (OIDs below FirstNormalObjectId), and no reg* types: their binary COPY format
             -- carries no database-specific OIDs (text prints reg* values as names, binary as OIDs).
             NOT EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                            AND (a.atttypid >= 16384 OR t.typname LIKE 'reg%' OR t.typname LIKE '\\_reg%')) AS builtin,
             ARRAY(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                      AND coalesce(to_jsonb(a) ->> 'attgenerated', '') = '' ORDER BY a.attnum)::text[] AS columns
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind = 'r' AND c.relpersistence <> 't'
         AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
         AND pg_table_size(c.oid) >= $1
       ORDER BY pg_table_size(c.oid) DESC`, [Number.isFinite(streamMin) ? streamMin : Number.MAX_SAFE_INTEGER]);
    const size = Number((await client.query<{ size: string }>('SELECT pg_database_size(current_database())::text AS size')).rows[0].size);
    const version = (await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0].v;
    return { roles, size, version, streamed: rows.map(({ builtin, ...r }) => ({ ...r, bytes: Number(r.bytes), binary: builtin })) };
  });

  const sameMajor = await withClient(target, target.maintenanceDatabase, async (client) => {
    const targetVersion = (await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0].v;
    return Math.floor(Number(targetVersion) / 10000) === Math.floor(Number(inspected.version) / 10000);
  });
  // Binary COPY is cheaper to produce and parse, but only portable between servers of the same major version.
  const streamed = inspected.streamed.map((t) => ({ ...t, binary: t.binary && sameMajor }));

  await withClient(original, original.maintenanceDatabase, async (client) => {
    await checkRoles(client, inspected.roles, { database, user: target.user, where: `${target.host}:${target.port}` });
    await checkRoleSettingsAlterable(client, database, target.user, sourceProperties.settings.map((x) => x.role).filter((r) => r !== ''));
    const taken = (await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname = ANY($1)', [[restoredAs, keptAs]])).rows.map((r) => r.datname);
    if (taken.length > 0) {
      throw new Error(`database ${taken.map((n) => JSON.stringify(n)).join(' and ')} already exists on the original: a run with stamp ${options.stamp} was here before. `
        + 'Use another stamp, or drop it if it is no longer needed. Nothing was written to the original.');
    }
  });

  const streamedBytes = inspected.streamed.reduce((sum, t) => sum + t.bytes, 0);
  const needed = Math.max(0, inspected.size - streamedBytes) * DISK_MARGIN;
  mkdirSync(options.workDir, { recursive: true });
  const stat = statfsSync(options.workDir);
  const free = Number(stat.bavail) * Number(stat.bsize);
  if (needed > free) {
    throw new Error(`not enough disk for the dump of ${JSON.stringify(database)} in ${options.workDir}: about ${mib(needed)} needed `
      + `(database ${mib(inspected.size)}, of which ${mib(streamedBytes)} is streamed without a file), ${mib(free)} free. `
      + 'Give the build more disk, or point the work directory elsewhere. Nothing was written to the original.');
  }
  const existsOnTarget = (await withClient(original, original.maintenanceDatabase, (c) => readDatabaseProperties(c, database))) !== undefined;
  const hazards = await withClient(original, original.maintenanceDatabase, (onTarget) => withClient(source, database, (onSource) => findHazards({
    database,
    strategy: options.strategy,
    existsOnTarget,
    // A drill restores as a recovery that accepted every hazard would (event triggers left out, say), and lists them.
    accepted: options.drill ? Object.values(HAZARDS) : options.acceptHazards ?? [],
    target: onTarget,
    source: onSource,
    onTargetDatabase: (other, fn) => withClient(original, other, fn),
  })));
  options.log.info(`${JSON.stringify(database)}: ${mib(inspected.size)}, ${inspected.roles.length} role references all present, `
    + `${streamed.length} table(s) streamed (${mib(streamedBytes)}; ${streamed.filter((t) => t.binary).length} in binary, ${streamed.filter((t) => !t.binary).length} in text COPY), `
    + `${existsOnTarget ? 'exists' : 'does not exist'} on the original`);
  const targetBytes = existsOnTarget
    ? Number((await withClient(original, original.maintenanceDatabase, (c) => c.query<{ size: string }>('SELECT pg_database_size($1)::text AS size', [database]))).rows[0].size)
    : 0;
  return { database, restoredAs, keptAs, existsOnTarget, sourceProperties, streamed, hazards, sourceBytes: inspected.size, targetBytes };
}

/**
 * Room on the original for what the copy writes, before anything is
 * written: under swap each database's copy sits beside the live one; under
 * replace the live one is dropped first, so only growth needs room. The
 * copy's size is the point-in-time copy's pg_database_size (indexes are
 * rebuilt compactly; WAL and temporary files of index builds take some
 * more, hence the margin). Storage autoscaling may add room, but only when
 * free space is already low and at most every few hours, so a copy that
 * fits only with it is allowed with a warning; one that cannot fit even then
 * is refused.
 */
export function checkOriginalStorage(
  plans: ReadonlyArray<Pick<DatabasePlan, 'database' | 'sourceBytes' | 'targetBytes'>>, options: Pick<CopyOptions, 'originalStorage' | 'strategy' | 'log'>,
): void {
  const storage = options.originalStorage;
  if (!storage) return;
  const needed = plans.reduce((sum, p) => sum + (options.strategy === 'swap' ? p.sourceBytes : Math.max(0, p.sourceBytes - p.targetBytes)), 0) * DISK_MARGIN;
  const what = `${options.strategy === 'swap' ? 'the copies beside the live databases need' : "the replaced databases' growth needs"} about ${mib(needed)} `
    + `(${plans.map((p) => `${JSON.stringify(p.database)} ${mib(p.sourceBytes)}`).join(', ')}, plus ${Math.round((DISK_MARGIN - 1) * 100)}%)`;
  if (needed <= storage.freeBytes) {
    options.log.info(`storage on the original: ${what}; ${mib(storage.freeBytes)} free`);
    return;
  }
  if (needed <= storage.freeBytes + storage.growableBytes) {
    options.log.warn(`storage on the original: ${what}, more than the ${mib(storage.freeBytes)} free; it fits only if storage autoscaling grows the instance `
      + `(up to ${mib(storage.growableBytes)} more) in time, which RDS does only when free space is already low and at most every few hours.`);
    return;
  }
  throw new Error(`not enough storage on the original: ${what}, but only ${mib(storage.freeBytes)} is free`
    + `${storage.growableBytes > 0 ? ` and storage autoscaling may add at most ${mib(storage.growableBytes)}` : ' and storage autoscaling is off or at its maximum'}. `
    + 'Increase the instance\'s allocated storage (aws rds modify-db-instance --allocated-storage ... --apply-immediately), recover fewer databases at a time, '
    + `${options.strategy === 'swap' ? 'or use strategy replace (the pre-recovery safety snapshot is then the way back), ' : ''}then run again. Nothing was written to the original.`);
}


/**
 * The copy gives the new database the per-role settings of the old one
 * (`ALTER ROLE r IN DATABASE d SET ...`). Up to PostgreSQL 15 a CREATEROLE
 * user may do that for any non-superuser role; from 16 only for roles it
 * holds with ADMIN OPTION (on RDS: roles the master user created, or was
 * granted WITH ADMIN OPTION). Checked before anything is written, so a
 * recovery does not fail after the data is copied.
 */
export async function checkRoleSettingsAlterable(
  client: ClientBase, database: string, user: string, roles: readonly string[],
): Promise<void> {
  if (roles.length === 0) return;
  const { rows } = await client.query<{ role: string }>(`
    SELECT r AS role FROM unnest($1::text[]) AS r
     WHERE r <> current_user AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r)
       AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND ((SELECT rolsuper FROM pg_roles WHERE rolname = r)
            OR NOT (SELECT rolcreaterole FROM pg_roles WHERE rolname = current_user)
            OR (current_setting('server_version_num')::int >= 160000 AND NOT pg_has_role(current_user, r, 'MEMBER WITH ADMIN OPTION')))
     ORDER BY 1`, [[...new Set(roles)]]);
  const cannot = rows.map((r) => r.role);
  if (cannot.length === 0) return;
  throw new Error(`database ${JSON.stringify(database)} has settings for role(s) ${cannot.map(ident).join(', ')} (ALTER ROLE ... IN DATABASE ... SET), `
    + `which ${ident(user)} may not give the restored database: from PostgreSQL 16 that needs ADMIN OPTION on the role. `
    + `As the role that created them (or another with ADMIN OPTION on them), run: GRANT ${cannot.map(ident).join(', ')} TO ${ident(user)} WITH ADMIN OPTION; `
    + 'then run again. Nothing was written to the original.');
}
