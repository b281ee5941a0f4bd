/** Properties: the database-level privileges, settings and comment of the point-in-time copy's database. */
import type { PgTarget } from '../../ports';
import { ident, literal } from '../names';
import { compareProperties, readDatabaseProperties, settingStatement, type DatabaseProperties } from '../verify';
import { PHASES } from './phases';
import { adminDatabase, withClient } from './sessions';
import type { DatabaseCopy, DatabasePlan } from './types';

/** After verification: the rest of the properties (see applyProperties), compared with the point-in-time copy. */
export function applyDatabaseProperties(copy: DatabaseCopy): Promise<void> {
  return copy.options.log.step(PHASES.applyProperties(copy.db), () => applyProperties(copy.target, copy.plan, copy.into, 'after verify'));
}

/**
 * Database-level properties of the point-in-time copy, in two phases.
 * Before the restore: the owner and every privilege except other roles' CONNECT, because
 * restoring object ownership as a non-superuser needs them (e.g. a schema
 * owner must have CREATE on the database). CONNECT stays withheld so
 * applications cannot reach the half-restored database. After
 * verification: CONNECT, settings, connection limit and comment — settings
 * such as default_transaction_read_only would get in the restore's way —
 * and then all of it is compared with the point-in-time copy.
 */
export async function applyProperties(target: PgTarget, plan: DatabasePlan, into: string, phase: 'before restore' | 'after verify'): Promise<void> {
  const p = plan.sourceProperties;
  const name = ident(into);
  const grantee = (g: string): string => (g === 'PUBLIC' ? g : ident(g));
  const grant = (a: DatabaseProperties['acl'][number]): string => `GRANT ${a.privilege} ON DATABASE ${name} TO ${grantee(a.grantee)}${a.grantable ? ' WITH GRANT OPTION' : ''}`;
  const otherConnect = (a: DatabaseProperties['acl'][number]): boolean => a.privilege === 'CONNECT' && a.grantee !== p.owner;
  const ownerConnects = p.acl.some((a) => a.privilege === 'CONNECT' && a.grantee === p.owner);
  const statements: string[] = [];
  if (phase === 'before restore') {
    statements.push(`ALTER DATABASE ${name} OWNER TO ${ident(p.owner)}`);
    const everyone = [...new Set(['PUBLIC', p.owner, ...p.acl.map((a) => a.grantee)])];
    statements.push(`REVOKE ALL ON DATABASE ${name} FROM ${everyone.map(grantee).join(', ')}`);
    statements.push(...p.acl.filter((a) => !otherConnect(a)).map(grant));
    // The restore connects through its membership in the owner role.
    if (!ownerConnects) statements.push(`GRANT CONNECT ON DATABASE ${name} TO ${ident(p.owner)}`);
  } else {
    if (!ownerConnects) statements.push(`REVOKE CONNECT ON DATABASE ${name} FROM ${ident(p.owner)}`);
    statements.push(...p.acl.filter(otherConnect).map(grant));
    if (p.connectionLimit !== -1) statements.push(`ALTER DATABASE ${name} CONNECTION LIMIT ${Number(p.connectionLimit)}`);
    for (const { role, config } of p.settings) for (const entry of config) statements.push(settingStatement(into, role, entry));
    statements.push(`COMMENT ON DATABASE ${name} IS ${p.comment === null ? 'NULL' : literal(p.comment)}`);
  }
  await withClient(target, adminDatabase(target, plan.database), async (client) => {
    for (const sql of statements) {
      await client.query(sql).catch((err: Error) => {
        throw new Error(`applying the database properties failed at \`${sql}\`: ${err.message}`);
      });
    }
    if (phase === 'before restore') return;
    const restored = await readDatabaseProperties(client, into);
    const differences = compareProperties(p, restored!);
    if (differences.length > 0) throw new Error(`database properties of ${JSON.stringify(into)} differ from the point-in-time copy:\n  ${differences.join('\n  ')}`);
  });
}
