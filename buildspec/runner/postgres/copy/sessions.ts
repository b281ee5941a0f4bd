/** Sessions on an instance, and the small helpers every phase uses. */
import type { Client } from 'pg';
import type { PgTarget } from '../../ports';
import { connect, describe } from '../process';

/** Runs `fn` on a session of its own, naming the instance and database in a server error. */
export async function withClient<T>(target: PgTarget, database: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await connect(target, database);
  try {
    return await fn(client);
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code && !e.message.includes(target.host)) e.message = `${e.message} (${describe(target, database)})`;
    throw e;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Bytes, as the log prints them. */
export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * The database to connect to for renaming or dropping `busy`: the maintenance
 * database, unless that is `busy` itself (recovering `postgres`), since
 * PostgreSQL cannot close, rename or drop the database a session is in.
 */
export function adminDatabase(target: PgTarget, busy: string): string {
  if (target.maintenanceDatabase !== busy) return target.maintenanceDatabase;
  return busy === 'template1' ? 'postgres' : 'template1';
}
