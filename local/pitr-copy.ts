/**
 * The RDS behaviours that local PostgreSQL plays, shared by the local
 * control plane (`rds-control.ts`, the runbook's local adapter) and the RDS
 * stand-in (`rds-standin/`, the AWS adapter's counterpart):
 *
 * - the "automated backup": a base backup of a cluster that archives its WAL;
 * - a point-in-time restore: that backup plus the WAL archive replayed to a
 *   time (`recovery_target_time`), brought up as a new cluster;
 * - a master password change, made as the local superuser over a client
 *   connection so the password never appears in a process's argv.
 */
import { Client } from 'pg';
import { LocalCluster, quoteIdent, quoteLiteral } from './cluster';

/**
 * Takes the base backup that anchors the restorable window. On RDS the master
 * user owns the `postgres` database; initdb gave it to the local superuser, so
 * that is corrected first (the backup, and every copy of it, then agrees).
 */
export async function takeAutomatedBackup(source: LocalCluster, masterUsername: string): Promise<{ readonly dir: string; readonly time: Date }> {
  if (!source.archiveDir) throw new Error('takeAutomatedBackup: the source cluster must be created with archiveWal.');
  await source.sql(`ALTER DATABASE postgres OWNER TO ${quoteIdent(masterUsername)}`);
  const dir = await source.baseBackup();
  return { dir, time: new Date() };
}

/**
 * A new cluster holding `source` as it was at `target`. Recovery to a time
 * stops at the first commit after it, so one is made, and the current WAL
 * segment is shipped (RDS does both continuously).
 */
export async function restorePointInTimeCopy(
  source: LocalCluster,
  backupDir: string,
  target: Date | 'latest',
  options: Parameters<LocalCluster['recoverTo']>[2] = {},
): Promise<LocalCluster> {
  await source.sql('SELECT txid_current()');
  await source.archiveCurrentWal();
  return source.recoverTo(backupDir, target, options);
}

/** `ALTER ROLE ... PASSWORD` as the local superuser, over a client connection (never argv). */
export async function setRolePassword(cluster: LocalCluster, username: string, password: string): Promise<void> {
  const client = new Client({ host: cluster.host, port: cluster.port, user: 'postgres', database: 'postgres' });
  await client.connect();
  try {
    await client.query(`ALTER ROLE ${quoteIdent(username)} PASSWORD ${quoteLiteral(password)}`);
  } finally {
    await client.end();
  }
}
