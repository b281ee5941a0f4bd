/**
 * Manual DB instance snapshots count against a quota of 100 per Region for
 * the whole account (RDS User Guide, "Quotas and constraints for Amazon
 * RDS"). Every recovery keeps a safety snapshot, so the summary's "Still
 * kept" part says so once this source keeps more than 20.
 */
import { SNAPSHOT_QUOTA_WARNING_ABOVE, keptLines } from '../buildspec/runner/housekeeping';
import { safetySnapshotId, stampOf } from '../src/contract';

const SOURCE = 'orders-db';
const NOW = new Date('2026-11-24T10:00:00Z');
const ORIGINAL = { host: 'orders-db.abc.us-east-1.rds.amazonaws.com', port: 5432 };

function snapshots(n: number) {
  return Array.from({ length: n }, (_, i) => ({
    id: safetySnapshotId(SOURCE, stampOf(new Date(NOW.getTime() - (i + 1) * 86_400_000))), status: 'available', allocatedGiB: 100,
  }));
}

test(`more than ${SNAPSHOT_QUOTA_WARNING_ABOVE} kept safety snapshots: the summary names the count, the quota of 100 per Region and how to drop old ones`, () => {
  const lines = keptLines({ inProgress: [], preRecovery: [], snapshots: snapshots(SNAPSHOT_QUOTA_WARNING_ABOVE + 1) }, SOURCE, ORIGINAL, NOW);
  const text = lines.join('\n');
  expect(lines.filter((l) => l.includes('aws rds delete-db-snapshot'))).toHaveLength(21);
  expect(text).toContain(`21 safety snapshots of ${SOURCE} are kept. Manual DB snapshots count against a quota of 100 per Region for the whole account`);
  expect(text).toContain('once it is reached, CreateDBSnapshot fails and the next recovery cannot take its safety snapshot');
  expect(text).toContain('MODE=housekeeping OLDER_THAN=<age>');
  expect(lines.at(-1)).toMatch(/quota/);
});

test(`${SNAPSHOT_QUOTA_WARNING_ABOVE} or fewer: no word about the quota`, () => {
  const text = keptLines({ inProgress: [], preRecovery: [], snapshots: snapshots(SNAPSHOT_QUOTA_WARNING_ABOVE) }, SOURCE, ORIGINAL, NOW).join('\n');
  expect(text).not.toMatch(/quota/);
});
