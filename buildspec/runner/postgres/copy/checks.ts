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
    const names = [...new Set(inspected.roles.map((r) => r.role))];
    const existing = new Set((await client.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname = ANY($1)', [names])).rows.map((r) => r.rolname));
    const missing = names.filter((n) => !existing.has(n)).sort();
    if (missing.length > 0) {
      throw new Error(`database ${JSON.stringify(database)} references roles that do not exist on the original (${target.host}:${target.port}): `
        + `${missing.map(ident).join(', ')}. Create them there (e.g. from \`pg_dumpall --roles-only\`), then run again. Nothing was written to the original.`);
    }
    const owners = [...new Set(inspected.roles.filter((r) => r.owns).map((r) => r.role))];
    const { rows } = await client.query<{ role: string; member: boolean; superuser: boolean }>(`
      SELECT r AS role, pg_has_role(current_user, r, 'MEMBER') AS member, (SELECT rolsuper FROM pg_roles WHERE rolname = r) AS superuser
        FROM unnest($1::text[]) AS r`, [owners]);
    const superusers = rows.filter((r) => !r.member && r.superuser).map((r) => r.role).sort();
    if (superusers.length > 0) {
      throw new Error(`objects in database ${JSON.stringify(database)} are owned by the superuser role(s) ${superusers.map(ident).join(', ')}, `
        + `which ${ident(target.user)} (not a superuser) cannot restore as their owner. Give them another owner on the point-in-time copy's source, `
        + 'or copy as a superuser. Nothing was written to the original.');
    }
    const cannot = rows.filter((r) => !r.member).map((r) => r.role).sort();
    if (cannot.length > 0) {
      throw new Error(`the user ${ident(target.user)} on the original cannot act as ${cannot.map(ident).join(', ')}, which own objects in database ${JSON.stringify(database)}, `
        + `so the restore could not give those objects their owners. As ${ident(target.user)}, run: GRANT ${cannot.map(ident).join(', ')} TO ${ident(target.user)}; `
        + 'then run again. Nothing was written to the original.');
    }
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
export function checkOriginalStorage(plans: readonly DatabasePlan[], options: CopyOptions): void {
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

/** SQL: the object is not a member of an extension (those are created, and owned, by CREATE EXTENSION). */
function notInExtension(catalog: string, oid: string, negate = false): string {
  return `${negate ? '' : 'NOT '}EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '${catalog}'::regclass AND e.objid = ${oid} AND e.deptype = 'e')`;
}

/**
 * Every role a restore of the current database will name: owners (whom the
 * restoring user must be able to act as) and the rest (ACL grantees and
 * grantors, policy roles, role-in-database settings), extension members excluded.
 */
const REFERENCED_ROLES = `
  WITH owners(oid) AS (
    SELECT relowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND ${notInExtension('pg_class', 'c.oid')}
    UNION SELECT proowner FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND ${notInExtension('pg_proc', 'p.oid')}
    UNION SELECT typowner FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND ${notInExtension('pg_type', 't.oid')}
      AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND ${notInExtension('pg_class', 'c.oid', true)})
      AND NOT EXISTS (SELECT 1 FROM pg_type el WHERE el.typarray = t.oid)
    UNION SELECT nspowner FROM pg_namespace s WHERE ${notInExtension('pg_namespace', 's.oid')} AND nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp\\_%'
    UNION SELECT collowner FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND ${notInExtension('pg_collation', 'c.oid')}
    UNION SELECT conowner FROM pg_conversion c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND ${notInExtension('pg_conversion', 'c.oid')}
    UNION SELECT oprowner FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND ${notInExtension('pg_operator', 'o.oid')}
    UNION SELECT opcowner FROM pg_opclass o JOIN pg_namespace n ON n.oid = o.opcnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND ${notInExtension('pg_opclass', 'o.oid')}
    UNION SELECT opfowner FROM pg_opfamily o JOIN pg_namespace n ON n.oid = o.opfnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND ${notInExtension('pg_opfamily', 'o.oid')}
    UNION SELECT dictowner FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND ${notInExtension('pg_ts_dict', 'd.oid')}
    UNION SELECT cfgowner FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND ${notInExtension('pg_ts_config', 'c.oid')}
    UNION SELECT lomowner FROM pg_largeobject_metadata
    UNION SELECT defaclrole FROM pg_default_acl
    UNION SELECT fdwowner FROM pg_foreign_data_wrapper
    UNION SELECT srvowner FROM pg_foreign_server
    UNION SELECT pubowner FROM pg_publication
    UNION SELECT datdba FROM pg_database WHERE datname = current_database()
  ), acls(acl) AS (
    SELECT relacl FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND relacl IS NOT NULL
    UNION ALL SELECT attacl FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND attacl IS NOT NULL
    UNION ALL SELECT proacl FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND proacl IS NOT NULL
    UNION ALL SELECT nspacl FROM pg_namespace WHERE nspacl IS NOT NULL AND nspname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL SELECT typacl FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND typacl IS NOT NULL
    UNION ALL SELECT lomacl FROM pg_largeobject_metadata WHERE lomacl IS NOT NULL
    UNION ALL SELECT defaclacl FROM pg_default_acl
    UNION ALL SELECT fdwacl FROM pg_foreign_data_wrapper WHERE fdwacl IS NOT NULL
    UNION ALL SELECT srvacl FROM pg_foreign_server WHERE srvacl IS NOT NULL
    UNION ALL SELECT datacl FROM pg_database WHERE datname = current_database() AND datacl IS NOT NULL
  ), others(oid) AS (
    SELECT (aclexplode(acl)).grantee FROM acls
    UNION SELECT (aclexplode(acl)).grantor FROM acls
    UNION SELECT unnest(polroles) FROM pg_policy
    UNION SELECT umuser FROM pg_user_mappings
    UNION SELECT setrole FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = current_database()
  )
  -- Built-in roles (pg_*, OIDs below 16384) exist everywhere and are never acted as.
  SELECT r.rolname AS role, bool_or(o.owns) AS owns
    FROM (SELECT oid, true AS owns FROM owners UNION ALL SELECT oid, false FROM others) o
    JOIN pg_roles r ON r.oid = o.oid
   WHERE o.oid <> 0 AND NOT (o.oid < 16384 AND r.rolname LIKE 'pg\\_%')
   GROUP BY r.rolname`;

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
