/**
 * The roles a restore names, checked on the original before anything is
 * written (issue #19). A restore by the master user, who is not a superuser
 * on RDS, gives each object its owner with `ALTER ... OWNER TO <role>`: the
 * role must exist, and the master user must be able to act as it (be a
 * member of it, directly or through a chain). Every role a grant names must
 * exist. The database copy, the table recovery and the plan's pre-flight
 * all refuse with these same messages and fixes.
 */
import type { Client } from 'pg';
import { ident } from './names';

/** A role a restore will name: as an owner (`owns`), or only in grants, policies or settings. */
export interface RoleReference {
  readonly role: string;
  readonly owns: boolean;
}

/** Where the roles are checked, for the messages. */
export interface RoleCheckContext {
  /** The database the objects belong to. */
  readonly database: string;
  /** The user who restores (the master user). */
  readonly user: string;
  /** `host:port` of the original. */
  readonly where: string;
}

/**
 * SQL, $1 = oid[] of tables: the roles a dump of those tables (with their
 * indexes and owned sequences) names: owners, grantees and grantors of table
 * and column privileges, policy roles. Built-in roles are left out.
 */
export const TABLE_ROLES = `
  WITH rels AS (
    SELECT c.oid, c.relowner, c.relacl FROM pg_class c
     WHERE c.oid = ANY($1::oid[])
        OR c.oid IN (SELECT objid FROM pg_depend WHERE classid = 'pg_class'::regclass AND refclassid = 'pg_class'::regclass
                        AND refobjid = ANY($1::oid[]) AND deptype IN ('a', 'i'))
  ), refs(oid, owns) AS (
    SELECT relowner, true FROM rels
    UNION ALL SELECT (aclexplode(relacl)).grantee, false FROM rels WHERE relacl IS NOT NULL
    UNION ALL SELECT (aclexplode(relacl)).grantor, false FROM rels WHERE relacl IS NOT NULL
    UNION ALL SELECT (aclexplode(a.attacl)).grantee, false FROM pg_attribute a WHERE a.attrelid = ANY($1::oid[]) AND a.attacl IS NOT NULL
    UNION ALL SELECT (aclexplode(a.attacl)).grantor, false FROM pg_attribute a WHERE a.attrelid = ANY($1::oid[]) AND a.attacl IS NOT NULL
    UNION ALL SELECT unnest(polroles), false FROM pg_policy WHERE polrelid = ANY($1::oid[])
  )
  SELECT r.rolname AS role, bool_or(refs.owns) AS owns
    FROM refs JOIN pg_roles r ON r.oid = refs.oid
   WHERE refs.oid <> 0 AND NOT (refs.oid < 16384 AND r.rolname LIKE 'pg\\_%')
   GROUP BY 1 ORDER BY 1`;

/** SQL: the object is not a member of an extension (those are created, and owned, by CREATE EXTENSION). */
function notInExtension(catalog: string, oid: string, negate = false): string {
  return `${negate ? '' : 'NOT '}EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '${catalog}'::regclass AND e.objid = ${oid} AND e.deptype = 'e')`;
}

/**
 * Every role a restore of the current database will name: owners (whom the
 * restoring user must be able to act as) and the rest (ACL grantees and
 * grantors, policy roles, role-in-database settings), extension members excluded.
 */
export const REFERENCED_ROLES = `
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

/** What stands in the way of restoring objects that name `references`, read on the original. */
export interface RoleProblems {
  /** Named but not on the original. */
  readonly missing: readonly string[];
  /** Owners that are superusers the user is not a member of. */
  readonly superusers: readonly string[];
  /** Other owners the user cannot act as. */
  readonly cannotActAs: readonly string[];
}

/** Reads, on the original (`client`), which of `references` are missing or cannot be acted as by the current user. */
export async function roleProblems(client: Client, references: readonly RoleReference[]): Promise<RoleProblems> {
  const names = [...new Set(references.map((r) => r.role))];
  const existing = new Set((await client.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname = ANY($1)', [names])).rows.map((r) => r.rolname));
  const missing = names.filter((n) => !existing.has(n)).sort();
  const owners = [...new Set(references.filter((r) => r.owns && existing.has(r.role)).map((r) => r.role))];
  const { rows } = await client.query<{ role: string; member: boolean; superuser: boolean }>(`
    SELECT r AS role, pg_has_role(current_user, r, 'MEMBER') AS member, (SELECT rolsuper FROM pg_roles WHERE rolname = r) AS superuser
      FROM unnest($1::text[]) AS r`, [owners]);
  return {
    missing,
    superusers: rows.filter((r) => !r.member && r.superuser).map((r) => r.role).sort(),
    cannotActAs: rows.filter((r) => !r.member && !r.superuser).map((r) => r.role).sort(),
  };
}

/** The refusal for `problems`, with the fix; undefined when there is none. The first problem found is the one reported, as the copy has always done. */
export function roleRefusal(problems: RoleProblems, ctx: RoleCheckContext): string | undefined {
  const db = JSON.stringify(ctx.database);
  if (problems.missing.length > 0) {
    return `database ${db} references roles that do not exist on the original (${ctx.where}): `
      + `${problems.missing.map(ident).join(', ')}. Create them there (e.g. from \`pg_dumpall --roles-only\`), then run again. Nothing was written to the original.`;
  }
  if (problems.superusers.length > 0) {
    return `objects in database ${db} are owned by the superuser role(s) ${problems.superusers.map(ident).join(', ')}, `
      + `which ${ident(ctx.user)} (not a superuser) cannot restore as their owner. Give them another owner on the point-in-time copy's source, `
      + 'or copy as a superuser. Nothing was written to the original.';
  }
  if (problems.cannotActAs.length > 0) {
    const roles = problems.cannotActAs.map(ident).join(', ');
    return `the user ${ident(ctx.user)} on the original cannot act as ${roles}, which own objects in database ${db}, `
      + `so the restore could not give those objects their owners. As ${ident(ctx.user)}, run: GRANT ${roles} TO ${ident(ctx.user)}; `
      + 'then run again. Nothing was written to the original.';
  }
  return undefined;
}

/** Throws the refusal for `references` on the original, if any. */
export async function checkRoles(client: Client, references: readonly RoleReference[], ctx: RoleCheckContext): Promise<void> {
  const refusal = roleRefusal(await roleProblems(client, references), ctx);
  if (refusal) throw new Error(refusal);
}
