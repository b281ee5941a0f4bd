/**
 * Failure injection at each step of the runbook, on real PostgreSQL through
 * the local control plane. Whatever fails: the run rejects naming the cause,
 * the temporary instance is deleted, and the original database is untouched
 * (swap) or restorable from the safety snapshot (replace).
 */
import { FAST_POLLING, MASTER, SMALL_DAMAGE, TestInstance, capturedLog, expectSame, request, smallSeed, VERSION_AS_REAL, withWrappedBinaries } from './recovery-harness';
import { PgDataPath, type PgDataPathSettings } from '../buildspec/runner/postgres/data-path';
import { runRecovery } from '../buildspec/runner/workflow';
import { fingerprintDatabase } from '../local/fingerprint';
import type { LocalFaults, LocalRdsControl } from '../local/rds-control';
import { START_ENV } from '../src/contract';

let instance: TestInstance;
/** One control plane (one automated backup) for the file; each test sets its faults. */
let rds: LocalRdsControl;
let counter = 0;

beforeAll(async () => {
  instance = await TestInstance.start();
  rds = await instance.control();
});

afterAll(async () => {
  await instance?.dispose();
});

interface Scenario {
  readonly faults?: LocalFaults;
  readonly data?: PgDataPathSettings;
  readonly strategy?: 'swap' | 'replace';
  readonly slowRows?: number;
}

/**
 * A fresh database seeded, T recorded, damaged after T, the password rotated;
 * then the runbook runs with the given faults. Returns what the checks need.
 */
async function runFailing(scenario: Scenario) {
  const db = `fault ${++counter}`;
  rds.faults = scenario.faults ?? {};
  const firstCall = rds.calls.length;
  await instance.createDatabase(db, smallSeed(scenario.slowRows));
  const t = await instance.markRestoreTime();
  await instance.runSql(db, SMALL_DAMAGE);
  const oldPassword = instance.password;
  await instance.rotatePassword();
  const before = await instance.fingerprint(db);
  const { log, text } = capturedLog();
  const error = await runRecovery(
    request({ [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.DATABASES]: db, [START_ENV.STRATEGY]: scenario.strategy ?? 'swap' }),
    {
      rds,
      data: new PgDataPath(scenario.data),
      log,
      credentials: { username: MASTER, password: instance.password },
      tls: instance.cluster.sslOptions,
      polling: FAST_POLLING,
    },
  ).then(() => undefined, (err: Error) => err);
  await rds.settled();
  const output = text();
  // The secret (current and as of T) never reaches the log, whatever failed.
  expect(output).not.toContain(instance.password);
  expect(output).not.toContain(oldPassword);
  return { db, error, output, before, calls: rds.calls.slice(firstCall) };
}

function expectNoTemporaryInstance(): void {
  expect(rds.liveInstanceIds()).toEqual([]);
}

test('the restore is refused: nothing to delete, the original is untouched', async () => {
  const { db, calls, error, output, before } = await runFailing({ faults: { refuseRestore: 'InvalidRestoreFault: injected: the restore was refused' } });
  expect(error?.message).toMatch(/InvalidRestoreFault: injected: the restore was refused/);
  expect(output).toMatch(/RESULT: FAILED in step "Restore temporary instance at the restore time"/);
  expect(output).toMatch(/The original instance was not changed\./);
  expect(calls.map((c) => c.action)).toEqual(['startSnapshot', 'restoreToPointInTime']);
  expectNoTemporaryInstance();
  expectSame(before, await instance.fingerprint(db));
});

test('the temporary instance goes to "failed": the run stops at once, deletes it, the original is untouched', async () => {
  const { db, calls, error, output, before } = await runFailing({ faults: { restoreEndsIn: 'failed' } });
  expect(error?.message).toMatch(/temporary instance test-db-pitr-\d{14} is "failed"/);
  expect(output).toMatch(/RESULT: FAILED in step "Wait for the temporary instance"/);
  const restored = calls.find((c) => c.action === 'restoreToPointInTime')!.id;
  expect(calls.filter((c) => c.action === 'deleteInstance').map((c) => c.id)).toEqual([restored]);
  expectNoTemporaryInstance();
  expectSame(before, await instance.fingerprint(db));
});

test('pg_dump fails: the cause is named, the temporary instance is deleted, the original is untouched', async () => {
  const { db, calls, error, output, before } = await withWrappedBinaries(
    { pg_dump: `${VERSION_AS_REAL}\necho "pg_dump: error: injected dump failure" >&2; exit 1` },
    () => runFailing({}),
  );
  expect(error?.message).toMatch(/injected dump failure/);
  expect(output).toMatch(/RESULT: FAILED in step "Copy, verify and swap in"/);
  expect(calls.some((c) => c.action === 'deleteInstance')).toBe(true);
  expectNoTemporaryInstance();
  expectSame(before, await instance.fingerprint(db));
});

const FAIL_POST_DATA = VERSION_AS_REAL + '\nfor a in "$@"; do if [ "$a" = "--section=post-data" ]; then echo "pg_restore: error: injected failure halfway through the restore" >&2; exit 1; fi; done; exec "$REAL" "$@"';

test('pg_restore fails halfway under swap: the original is untouched', async () => {
  const { db, error, before } = await withWrappedBinaries({ pg_restore: FAIL_POST_DATA }, () => runFailing({}));
  expect(error?.message).toMatch(/injected failure halfway through the restore/);
  expectNoTemporaryInstance();
  expectSame(before, await instance.fingerprint(db));
  expect(await instance.databases()).toContain(db);
});

test('pg_restore fails halfway under replace: the original as it was is in the safety snapshot', async () => {
  const { db, calls, error, output, before } = await withWrappedBinaries({ pg_restore: FAIL_POST_DATA }, () => runFailing({ strategy: 'replace' }));
  expect(error?.message).toMatch(/injected failure halfway through the restore/);
  const snapshotId = calls.find((c) => c.action === 'startSnapshot')!.id;
  expect(output).toMatch(new RegExp(`Its state before this run is in the safety snapshot ${snapshotId}`));
  expectNoTemporaryInstance();
  const fromSnapshot = await rds.restoreSnapshot(snapshotId);
  try {
    expectSame(before, await fingerprintDatabase(fromSnapshot, db));
  } finally {
    await fromSnapshot.destroy();
  }
});

test('verification finds a mismatch: nothing is swapped, the original is untouched', async () => {
  const { db, error, output, before } = await runFailing({
    data: {
      beforeVerify: async (_database, restoredAs) => {
        await instance.cluster.sql("INSERT INTO shop.items (name) VALUES ('tampered after the restore')", restoredAs);
      },
    },
  });
  expect(error?.message).toMatch(/verification failed: .* differs .*\n.*table "shop"."items"/);
  expect(output).toMatch(/RESULT: FAILED in step "Copy, verify and swap in"/);
  expectNoTemporaryInstance();
  expectSame(before, await instance.fingerprint(db));
  expect((await instance.databases()).filter((d) => d.startsWith(`${db}__before_pitr_`))).toEqual([]);
});

test('the safety snapshot fails: nothing on the original is touched', async () => {
  const { db, error, output, before } = await runFailing({ faults: { snapshotEndsIn: 'failed' } });
  expect(error?.message).toMatch(/safety snapshot test-db-pre-pitr-\d{14} is "failed"; nothing on the original was changed/);
  expect(output).toMatch(/RESULT: FAILED in step "Wait for the safety snapshot"/);
  expectNoTemporaryInstance();
  expectSame(before, await instance.fingerprint(db));
});
