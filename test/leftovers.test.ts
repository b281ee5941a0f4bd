/**
 * Leftovers of earlier runs on real PostgreSQL, through the local control
 * plane: a dead in-progress copy is found by the plan and dropped by the
 * next recovery before its disk check; a running build's copy is never
 * touched; housekeeping drops old pre-recovery copies and safety snapshots
 * only after CONFIRM, and a dry run only lists; every summary ends with what
 * is still kept and how to remove it.
 */
import { FAST_POLLING, MASTER, SOURCE_ID, TestInstance, capturedLog, request, smallSeed } from './recovery-harness';
import { readHousekeepingRequest, runHousekeeping, type HousekeepingDeps } from '../buildspec/runner/housekeeping';
import { PlanError } from '../buildspec/runner/plan';
import type { RdsControl } from '../buildspec/runner/ports';
import { PgDataPath } from '../buildspec/runner/postgres/data-path';
import { PgOriginalCatalog } from '../buildspec/runner/postgres/leftovers';
import { runRecovery, type RecoveryDeps } from '../buildspec/runner/workflow';
import { LocalBuilds, type LocalRdsControl } from '../local/rds-control';
import { PROJECT_ENV, START_ENV, TAGS, safetySnapshotId, stampOf, temporaryInstanceId } from '../src/contract';

const DAY = 86_400_000;
let instance: TestInstance;
let rds: LocalRdsControl;

beforeAll(async () => {
  instance = await TestInstance.start();
  rds = await instance.control();
});

afterAll(async () => {
  await instance?.dispose();
});

function stampDaysAgo(days: number): string {
  return stampOf(new Date(Date.now() - days * DAY));
}

function housekeepingDeps(log: HousekeepingDeps['log'], control: RdsControl = rds, builds = new LocalBuilds()): HousekeepingDeps {
  return {
    rds: control,
    catalog: new PgOriginalCatalog(),
    builds,
    log,
    credentials: { username: MASTER, password: instance.password },
    tls: instance.cluster.sslOptions,
  };
}

function housekeeping(env: Record<string, string>) {
  return readHousekeepingRequest({ [PROJECT_ENV.SOURCE_INSTANCE_ID]: SOURCE_ID, ...env });
}

/** A recovery's dependencies against the test instance, with leftovers listed and dead copies dropped. */
function recoveryDeps(log: HousekeepingDeps['log']): RecoveryDeps {
  return {
    rds,
    data: new PgDataPath(),
    log,
    catalog: new PgOriginalCatalog(),
    builds: new LocalBuilds(),
    credentials: { username: MASTER, password: instance.password },
    tls: instance.cluster.sslOptions,
    polling: FAST_POLLING,
  };
}

// Runs first: the recovery below keeps a pre-recovery copy and a safety snapshot the later tests see.
test('a dead in-progress copy is listed by the plan, dropped before the copy and its disk check, and the summary lists what is kept', async () => {
  await instance.createDatabase('shop', smallSeed());
  const t = await instance.markRestoreTime();
  // What a killed run leaves: its half-copy, its temporary instance since deleted by the janitor.
  const dead = `shop__pitr_${stampDaysAgo(2)}`;
  await instance.createDatabase(dead, smallSeed());
  // Named like a copy but not the master user's: the catalog check leaves it out.
  const foreign = `lookalike__pitr_${stampDaysAgo(2)}`;
  await instance.cluster.sql(`CREATE DATABASE "${foreign}"`);

  const { log, text, lines } = capturedLog();
  const outcome = await runRecovery(request({ [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.DATABASES]: 'shop' }), recoveryDeps(log));
  await rds.settled();

  const output = text();
  expect(output).toMatch(new RegExp(`found: in-progress copy "${dead}" on the original \\(\\d+\\.\\d MiB, 2 d 0 h old\\): dead, its run is over: its temporary instance ${temporaryInstanceId(SOURCE_ID, dead.slice(-14))} is gone`));
  const droppedAt = lines.findIndex((l) => l.includes(`dropped the in-progress copy "${dead}"`));
  const copyStep = lines.findIndex((l) => l.includes('> Copy, verify and swap in'));
  expect(droppedAt).toBeGreaterThan(0);
  expect(droppedAt).toBeLessThan(copyStep);
  const databases = await instance.databases();
  expect(databases).not.toContain(dead);
  expect(databases).toContain(foreign);
  expect(output).not.toContain(foreign);

  // The summary ends with what is kept: this run's pre-recovery copy and safety snapshot, each with its command.
  const kept = outcome.results[0].keptAs!;
  const summary = lines.slice(lines.findIndex((l) => l.includes('==== Summary ====')));
  const keptHead = summary.findIndex((l) => /Still kept for test-db \(databases on the original/.test(l));
  expect(keptHead).toBeGreaterThan(summary.findIndex((l) => l.includes('RESULT: SUCCESS')));
  expect(summary.slice(keptHead).join('\n')).toMatch(new RegExp(`database "${kept}" \\(\\d+\\.\\d MiB, [\\d.]+ (ms|s) old\\): DROP DATABASE "${kept}";`));
  expect(summary.slice(keptHead).join('\n')).toContain(`snapshot ${outcome.plan.safetySnapshotId} (available, `);
  expect(summary.slice(keptHead).join('\n')).toContain(`aws rds delete-db-snapshot --db-snapshot-identifier ${outcome.plan.safetySnapshotId}`);
});

test('a pre-recovery copy owned by the application\'s role (the master user a member of it, the usual RDS layout) is listed as kept, and housekeeping can drop it', async () => {
  // The swap renames the original, so the pre-recovery copy keeps the original's owner. Listed only when the
  // master user owned the database, such copies were invisible: never in "Still kept", never dropped by housekeeping.
  await instance.cluster.sql('CREATE ROLE crm_owner NOLOGIN');
  await instance.cluster.sql(`GRANT crm_owner TO ${MASTER}`);
  await instance.cluster.sql('CREATE DATABASE crm OWNER crm_owner');
  await instance.cluster.sql('CREATE TABLE contacts (id int PRIMARY KEY, name text); INSERT INTO contacts SELECT g, \'c\' || g FROM generate_series(1, 50) g; ALTER TABLE contacts OWNER TO crm_owner;', 'crm');
  const t = await instance.markRestoreTime();
  const { log, lines } = capturedLog();
  const outcome = await runRecovery(request({ [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.DATABASES]: 'crm' }), recoveryDeps(log));
  await rds.settled();
  const kept = outcome.results[0].keptAs!;
  expect((await instance.cluster.sql(`SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '${kept}'`)).trim()).toBe('crm_owner');
  const summary = lines.slice(lines.findIndex((l) => l.includes('==== Summary ====')));
  const keptBlock = summary.slice(summary.findIndex((l) => /Still kept for test-db/.test(l))).join('\n');
  expect(keptBlock).toContain(`database "${kept}" (`);
  expect(keptBlock).toContain(`DROP DATABASE "${kept}";`);

  // A look-alike owned by a role the master user cannot act as stays invisible.
  const foreign = `crm__before_pitr_${stampDaysAgo(3)}`;
  await instance.cluster.sql(`CREATE DATABASE "${foreign}"`);
  const asMaster = {
    host: instance.cluster.host,
    port: instance.cluster.port,
    user: MASTER,
    password: instance.password,
    maintenanceDatabase: 'postgres',
    ...instance.cluster.sslOptions,
  };
  const listed = (await new PgOriginalCatalog().listMarked(asMaster)).map((m) => m.name);
  expect(listed).toContain(kept);
  expect(listed).not.toContain(foreign);
  // Housekeeping's drop, as the master user: allowed through the membership.
  await new PgOriginalCatalog().drop(asMaster, kept);
  expect(await instance.databases()).not.toContain(kept);
  await instance.cluster.sql(`DROP DATABASE "${foreign}"`);
});

test('a copy whose build CodeBuild reports running is never touched; once CodeBuild says it ended, it is dropped', async () => {
  const stamp = stampDaysAgo(3);
  const copy = `shop__pitr_${stamp}`;
  await instance.createDatabase(copy, smallSeed());
  const buildId = 'test:still-running';
  // Its temporary instance is alive and tagged with its build.
  const control: RdsControl = Object.assign(Object.create(rds), {
    findInstancesByTag: async (key: string, value: string) => (key === TAGS.SOURCE && value === SOURCE_ID
      ? [{ id: temporaryInstanceId(SOURCE_ID, stamp), status: 'available', buildId }]
      : rds.findInstancesByTag(key, value)),
  });
  const builds = new LocalBuilds();
  builds.set(buildId, 'IN_PROGRESS');

  const first = capturedLog();
  const kept = await runHousekeeping(housekeeping({ [START_ENV.OLDER_THAN]: '1h', [START_ENV.CONFIRM]: SOURCE_ID }), housekeepingDeps(first.log, control, builds));
  expect(kept.selected).not.toContain(copy);
  expect(await instance.databases()).toContain(copy);
  expect(first.text()).toContain(`its build ${buildId} is still running (temporary instance ${temporaryInstanceId(SOURCE_ID, stamp)} is available); never touched`);

  builds.set(buildId, 'FAILED');
  const second = capturedLog();
  const done = await runHousekeeping(housekeeping({ [START_ENV.OLDER_THAN]: '3650d', [START_ENV.CONFIRM]: SOURCE_ID }), housekeepingDeps(second.log, control, builds));
  expect(done.dropped).toEqual([copy]);
  expect(await instance.databases()).not.toContain(copy);
  expect(second.text()).toContain(`its build ${buildId} ended (FAILED)`);
});

describe('housekeeping', () => {
  let oldCopy: string;
  let newCopy: string;
  let oldSnapshot: string;
  let newSnapshot: string;

  beforeAll(async () => {
    oldCopy = `shop__before_pitr_${stampDaysAgo(10)}`;
    newCopy = `shop__before_pitr_${stampDaysAgo(2)}`;
    await instance.createDatabase(oldCopy, smallSeed());
    await instance.createDatabase(newCopy, smallSeed());
    oldSnapshot = safetySnapshotId(SOURCE_ID, stampDaysAgo(10));
    newSnapshot = safetySnapshotId(SOURCE_ID, stampDaysAgo(2));
    await rds.startSnapshot(SOURCE_ID, oldSnapshot, {});
    await rds.startSnapshot(SOURCE_ID, newSnapshot, {});
    await rds.settled();
    rds.backdateSnapshot(oldSnapshot, new Date(Date.now() - 10 * DAY));
    rds.backdateSnapshot(newSnapshot, new Date(Date.now() - 2 * DAY));
  });

  test.each([
    [{ [START_ENV.OLDER_THAN]: '7d' }, /CONFIRM: not set; accepted: exactly "test-db", to confirm that pre-recovery copies and safety snapshots older than 7d are dropped for good \(or DRY_RUN=true to only list them\)/],
    [{ [START_ENV.OLDER_THAN]: '7d', [START_ENV.CONFIRM]: 'other-db' }, /CONFIRM: "other-db" does not match the source instance; accepted: exactly "test-db"/],
    [{ [START_ENV.CONFIRM]: SOURCE_ID }, /OLDER_THAN: not set; accepted: a whole number of days or hours such as 7d or 36h .*; there is deliberately no default/],
    [{ [START_ENV.OLDER_THAN]: '7', [START_ENV.CONFIRM]: SOURCE_ID }, /OLDER_THAN: "7" is not an age; accepted: a whole number of days or hours/],
    [{ [START_ENV.OLDER_THAN]: '0d', [START_ENV.CONFIRM]: SOURCE_ID }, /OLDER_THAN: "0d" is not an age; accepted: .*at least 1h/],
    [{ [START_ENV.OLDER_THAN]: '7d', [START_ENV.DRY_RUN]: 'maybe' }, /DRY_RUN: "maybe" is not a boolean; accepted: true \| false/],
  ])('refused before anything is looked at: %j', async (env, pattern) => {
    const error = (() => {
      try {
        housekeeping(env);
        return undefined;
      } catch (err) {
        return err as Error;
      }
    })();
    expect(error).toBeInstanceOf(PlanError);
    expect(error!.message).toMatch(pattern);
    expect(error!.message).toMatch(/[Nn]othing was created or changed/);
    expect(await instance.databases()).toEqual(expect.arrayContaining([oldCopy, newCopy]));
  });

  test('a dry run lists what is older than the age and drops nothing', async () => {
    const { log, text } = capturedLog();
    const outcome = await runHousekeeping(housekeeping({ [START_ENV.OLDER_THAN]: '7d', [START_ENV.DRY_RUN]: 'true' }), housekeepingDeps(log));
    expect([...outcome.selected].sort()).toEqual([oldCopy, oldSnapshot].sort());
    expect(outcome.dropped).toEqual([]);
    expect(text()).toMatch(new RegExp(`would drop pre-recovery copy "${oldCopy}" \\(\\d+\\.\\d MiB, 10 d 0 h old\\)`));
    expect(text()).toMatch(new RegExp(`would delete safety snapshot ${oldSnapshot} \\(10 d 0 h old\\)`));
    expect(await instance.databases()).toEqual(expect.arrayContaining([oldCopy, newCopy]));
    expect((await rds.listSafetySnapshots(SOURCE_ID)).map((s) => s.id)).toEqual(expect.arrayContaining([oldSnapshot, newSnapshot]));
  });

  test('with CONFIRM, drops only what is older than the age; the rest stays and is listed with its command', async () => {
    const { log, text } = capturedLog();
    const outcome = await runHousekeeping(housekeeping({ [START_ENV.OLDER_THAN]: '7d', [START_ENV.CONFIRM]: SOURCE_ID }), housekeepingDeps(log));
    expect([...outcome.dropped].sort()).toEqual([oldCopy, oldSnapshot].sort());
    const databases = await instance.databases();
    expect(databases).not.toContain(oldCopy);
    expect(databases).toContain(newCopy);
    const snapshots = (await rds.listSafetySnapshots(SOURCE_ID)).map((s) => s.id);
    expect(snapshots).not.toContain(oldSnapshot);
    expect(snapshots).toContain(newSnapshot);
    expect(text()).toContain(`DROP DATABASE "${newCopy}";`);
    expect(text()).toContain(`aws rds delete-db-snapshot --db-snapshot-identifier ${newSnapshot}`);
    expect(text()).not.toContain(`DROP DATABASE "${oldCopy}";`);
    expect(text()).toMatch(/RESULT: SUCCESS: housekeeping dropped 2 item\(s\)/);
  });
});
