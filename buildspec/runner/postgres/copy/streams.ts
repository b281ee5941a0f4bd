/** Streams: a large table's data from the point-in-time copy straight into the new database, hashed as it flows. */
import { pipeline } from 'node:stream/promises';
import type { Client } from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { ident, literal, qualified } from '../names';
import { connect } from '../process';
import { CopyChecksum, copyOutSql } from '../verify';
import type { DatabaseCopy, StreamedTable } from './types';

/**
 * COPY TO STDOUT under the exported snapshot, into COPY FROM STDIN (FREEZE)
 * after TRUNCATE in the same transaction, in-process on two `pg`
 * connections: the bytes are hashed as they flow (the table's checksum on
 * the point-in-time copy, see CopyChecksum), which spares a second read of
 * the table there. Both sessions use the database's encoding as
 * client_encoding, so the bytes pass unconverted. Returns the checksum.
 */
export async function streamTable(copy: DatabaseCopy, table: StreamedTable, snapshot: string): Promise<string> {
  const { source, target, plan, into, processes } = copy;
  const name = qualified(table.schema, table.name);
  const encoding = `SET client_encoding = ${literal(plan.sourceProperties.encoding)}`;
  const clients: Client[] = [];
  const close = (): void => {
    for (const c of clients) void c.end().catch(() => undefined);
  };
  const untrack = processes.track(close);
  try {
    const reader = await connect(source, plan.database);
    clients.push(reader);
    const writer = await connect(target, into);
    clients.push(writer);
    processes.throwIfAborted();
    await reader.query(`BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT ${literal(snapshot)}; ${encoding}`);
    await writer.query(`${encoding}; BEGIN; TRUNCATE ONLY ${name}`);
    const checksum = new CopyChecksum();
    const out = reader.query(copyTo(copyOutSql(table)));
    const load = writer.query(copyFrom(`COPY ${name} (${table.columns.map(ident).join(', ')}) FROM STDIN (${table.binary ? 'FORMAT binary, ' : ''}FREEZE)`));
    await pipeline(out, checksum.passThrough(), load);
    if (load.rowCount !== out.rowCount) throw new Error(`${out.rowCount} rows read, ${load.rowCount} written`);
    await writer.query('COMMIT');
    await reader.query('COMMIT');
    return checksum.result(out.rowCount);
  } catch (err) {
    processes.throwIfAborted();
    throw new Error(`copying table ${name} failed: ${(err as Error).message}`);
  } finally {
    untrack();
    close();
  }
}
