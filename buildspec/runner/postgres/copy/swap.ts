/** Swap: the restored database takes the live one's name; the live one is kept beside it. */
import type { StepLog } from '../../log';
import type { PgTarget } from '../../ports';
import { ident } from '../names';
import { TERMINATE_TIMEOUT_MS } from './limits';
import { PHASES } from './phases';
import { adminDatabase, withClient } from './sessions';
import type { DatabaseCopy, DatabasePlan } from './types';

/**
 * Puts the verified copy in place: under swap by renaming (the critical
 * section below); under replace it is in place already, unavailable since the
 * drop (`unavailableSince`); a drill swaps nothing. From here on the copy is
 * the database, which a clean-up must not drop.
 */
export async function swapIn(copy: DatabaseCopy, unavailableSince: number | undefined): Promise<{ unavailableMs: number; keptAs?: string }> {
  const { options } = copy;
  copy.processes.throwIfAborted();
  let swapped: { unavailableMs: number; keptAs?: string };
  if (copy.replace) {
    swapped = { unavailableMs: unavailableSince === undefined ? 0 : Date.now() - unavailableSince };
  } else if (options.drill) {
    swapped = { unavailableMs: 0 };
  } else {
    swapped = await options.log.step(PHASES.swap(copy.db), () => swap(copy.target, copy.plan, options.log));
  }
  copy.state.created = false;
  return swapped;
}

/**
 * The critical section: block new connections to the live database, end its
 * sessions, and rename both databases in one transaction. Returns how long
 * the live database refused connections.
 */
async function swap(target: PgTarget, plan: DatabasePlan, log: StepLog): Promise<{ unavailableMs: number; keptAs?: string }> {
  return withClient(target, adminDatabase(target, plan.database), async (client) => {
    const live = ident(plan.database);
    const restored = ident(plan.restoredAs);
    if (!plan.existsOnTarget) {
      await client.query(`ALTER DATABASE ${restored} RENAME TO ${live}`);
      return { unavailableMs: 0 };
    }
    const started = Date.now();
    await client.query(`ALTER DATABASE ${live} ALLOW_CONNECTIONS false`);
    try {
      for (;;) {
        // Sessions of superusers cannot be ended by a non-superuser (the RDS master user): leave them to leave, within the timeout.
        await client.query(`SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
                             WHERE a.datname = ANY($1) AND a.pid <> pg_backend_pid()
                               AND (NOT r.rolsuper OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))`, [[plan.database, plan.restoredAs]]);
        try {
          await client.query('BEGIN');
          await client.query(`ALTER DATABASE ${live} RENAME TO ${ident(plan.keptAs)}`);
          await client.query(`ALTER DATABASE ${restored} RENAME TO ${live}`);
          await client.query('COMMIT');
          break;
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          // 55006: object_in_use — a session is still ending, or one slipped in; anything else is real.
          if ((err as { code?: string }).code !== '55006' || Date.now() - started > TERMINATE_TIMEOUT_MS) throw err;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
    } catch (err) {
      const reopen = `ALTER DATABASE ${live} ALLOW_CONNECTIONS true`;
      // The session may be the thing that failed: reopen on a fresh one if need be, and only claim what worked.
      const reopenOnFreshSession = (): Promise<boolean> => withClient(target, adminDatabase(target, plan.database), (c) => c.query(reopen))
        .then(() => true, () => false);
      const reopened = await client.query(reopen).then(() => true, reopenOnFreshSession);
      const what = (err as { code?: string }).code === '55006'
        ? `could not end the sessions on ${JSON.stringify(plan.database)} within ${TERMINATE_TIMEOUT_MS / 1000} s (sessions of superusers or other roles the user cannot signal?)`
        : 'failed before the renames';
      throw new Error(`the swap ${what}: ${(err as Error).message}. Nothing was renamed. `
        + (reopened ? `${JSON.stringify(plan.database)} accepts connections again.` : `${JSON.stringify(plan.database)} MAY STILL REFUSE CONNECTIONS: run ${reopen};`));
    }
    const unavailableMs = Date.now() - started;
    // The swap is committed: from here on nothing may throw, or the caller would report the original as unchanged.
    // The kept database stays open so the post-restore-time writes can be read and reconciled.
    const reopenKept = `ALTER DATABASE ${ident(plan.keptAs)} ALLOW_CONNECTIONS true`;
    await client.query(reopenKept).catch((err: Error) => {
      log.warn(`${JSON.stringify(plan.keptAs)} (the pre-recovery data) still refuses connections (${err.message}); to read it, run ${reopenKept};`);
    });
    return { unavailableMs, keptAs: plan.keptAs };
  });
}
