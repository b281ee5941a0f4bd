/**
 * Create: the database the copy is restored into, with the point-in-time
 * copy's encoding, locale, owner and privileges (but other roles' CONNECT);
 * and, under strategy replace, dropping the original's database first.
 */
import { ident, literal } from '../names';
import type { DatabaseProperties } from '../verify';
import { PHASES } from './phases';
import { applyProperties } from './properties';
import { adminDatabase, withClient } from './sessions';
import type { DatabaseCopy } from './types';

export function createDatabase(copy: DatabaseCopy): Promise<void> {
  const { target, plan, into, processes, options } = copy;
  return options.log.step(PHASES.create(copy.db, into, Boolean(options.drill)), async () => {
    processes.throwIfAborted();
    await withClient(target, adminDatabase(target, plan.database), async (c) => {
      await c.query(createDatabaseSql(into, plan.sourceProperties));
      copy.state.created = true;
    });
    await applyProperties(target, plan, into, 'before restore');
  });
}

/** Strategy replace: drops the database on the original. Returns when it became unavailable. */
export async function dropForReplace(copy: DatabaseCopy): Promise<number> {
  const { target, plan, processes, options } = copy;
  processes.throwIfAborted();
  let unavailableSince = Date.now();
  await options.log.step(PHASES.dropForReplace(copy.db), async () => {
    unavailableSince = Date.now();
    copy.state.dropped = true;
    await withClient(target, adminDatabase(target, plan.database), (c) => c.query(`DROP DATABASE ${ident(plan.database)} WITH (FORCE)`));
  });
  options.log.warn(`${copy.db} was dropped on the original; until this copy finishes it is restorable from the pre-recovery safety snapshot.`);
  return unavailableSince;
}

function createDatabaseSql(name: string, p: DatabaseProperties): string {
  const parts = [`CREATE DATABASE ${ident(name)} TEMPLATE template0 ENCODING ${literal(p.encoding)}`,
    `LC_COLLATE ${literal(p.collate)} LC_CTYPE ${literal(p.ctype)}`];
  if (p.localeProvider === 'i') parts.push(`LOCALE_PROVIDER icu ICU_LOCALE ${literal(p.iculocale ?? '')}`);
  return parts.join(' ');
}
