/** Clean up after a failure. */
import { ident } from '../names';
import { adminDatabase, withClient } from './sessions';
import type { DatabaseCopy } from './types';

/** After a failure: drop the half-made database, and say what state the original is in. */
export async function cleanUp({ target, plan, into, state }: DatabaseCopy): Promise<string> {
  let dropped = '';
  if (state.created) {
    try {
      await withClient(target, adminDatabase(target, plan.database), (c) => c.query(`DROP DATABASE IF EXISTS ${ident(into)} WITH (FORCE)`));
      dropped = `The partly restored database ${JSON.stringify(into)} was dropped. `;
    } catch (err) {
      dropped = `The partly restored database ${JSON.stringify(into)} could not be dropped (${(err as Error).message}); drop it by hand: DROP DATABASE ${ident(into)} WITH (FORCE); `;
    }
  }
  if (state.dropped) {
    return `${dropped}Strategy replace: ${JSON.stringify(plan.database)} was dropped on the original; restore it from the pre-recovery safety snapshot or run the copy again.`;
  }
  return `${dropped}${JSON.stringify(plan.database)} on the original was not changed.`;
}
