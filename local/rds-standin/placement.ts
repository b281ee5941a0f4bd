/**
 * Where the stand-in's instances listen, and how they serve TLS, so the
 * runner connects with `sslmode=verify-full` exactly as on AWS: the source
 * instance on 127.0.0.1, every temporary instance (a point-in-time copy) on
 * 127.0.0.2, each with a certificate for its own address only, from one test
 * CA (the runner's `PG_CA_BUNDLE`). A client that connects to the wrong host,
 * or trusts another CA, is refused as it would be on RDS. `temporaryHost`
 * 127.0.0.1 puts the copies on the source's host (the rehearsal's
 * `--one-host`). `sourceSettings` are the source's parameter group (the rehearsal's
 * `--changes` turns track_commit_timestamp on).
 */
import type { StandInPlacement } from './engine';
import { LOOPBACK, LocalCluster, SECOND_HOST } from '../cluster';
import { restorePointInTimeCopy } from '../pitr-copy';
import type { TestCa } from '../test-ca';

export function tlsPlacement(
  ca: TestCa,
  options: {
    readonly temporaryHost?: string;
    /** postgresql.conf settings of the source instance, as its DB parameter group sets them (e.g. track_commit_timestamp). */
    readonly sourceSettings?: Record<string, string>;
  } = {},
): StandInPlacement {
  const temporaryHost = options.temporaryHost ?? SECOND_HOST;
  return {
    async createSource(master) {
      const cluster = await LocalCluster.create({ archiveWal: true, master, host: LOOPBACK, tls: ca, settings: options.sourceSettings });
      return { cluster, host: cluster.host };
    },
    // Not like RDS: the copy gets a free port, not the requested Port (two copies may share neither host nor port here).
    async restoreCopy(source, backupDir, target) {
      const cluster = await restorePointInTimeCopy(source, backupDir, target, { host: temporaryHost });
      return { cluster, host: cluster.host };
    },
  };
}
