/**
 * The runbook end to end on real PostgreSQL, through the local control
 * plane (real point-in-time recovery) and the real data path: the
 * databases come back exactly as they were at T, for both strategies; bad
 * inputs are refused before anything is created.
 */
import { join } from 'node:path';
import { FAST_POLLING, MASTER, TestInstance, capturedLog, expectSame, request, smallSeed } from './recovery-harness';
import { PlanError } from '../buildspec/runner/plan';
import type { RdsControl } from '../buildspec/runner/ports';
import { recordChanges, type ChangesOptions } from '../buildspec/runner/postgres/changes';
import { PgDataPath } from '../buildspec/runner/postgres/data-path';
import { runRecovery, type RecoveryDeps } from '../buildspec/runner/workflow';
import type { LocalRdsControl } from '../local/rds-control';
import { LATEST, START_ENV, TAGS } from '../src/contract';

const RICH_SEED = join(__dirname, 'fixtures', 'rich-dataset.sql');
const RICH_DAMAGE = join(__dirname, 'fixtures', 'damage.sql');
/** Spaces, capitals, a quote and non-ASCII: every name built from it must still work. */
const RICH_DB = 'Orders "Main" ü';

let instance: TestInstance;
let rds: LocalRdsControl;
/** What each record of writes after T was given. */
const recorded: ChangesOptions[] = [];

beforeAll(async () => {
  instance = await TestInstance.start();
  rds = await instance.control();
});

afterAll(async () => {
  await instance?.dispose();
});

function deps(log: RecoveryDeps['log'], control: RdsControl = rds): RecoveryDeps {
  return {
    rds: control,
    data: new PgDataPath(),
    changes: {
      record: (target, options) => {
        recorded.push(options);
        return recordChanges(target, options);
      },
    },
    log,
    credentials: { username: MASTER, password: instance.password },
    tls: instance.cluster.sslOptions,
    polling: FAST_POLLING,
  };
}

// Runs first: it recovers every database that existed at T, so no other test's database may exist yet.
test('swap, every database at T: each comes back exactly, the pre-recovery data is kept, later databases are left alone', async () => {
  await instance.createDatabase(RICH_DB, RICH_SEED);
  await instance.createDatabase('dropped after T', smallSeed());
  const t = await instance.markRestoreTime();
  const atT = new Map<string, string[]>();
  for (const db of await instance.databases()) atT.set(db, await instance.fingerprint(db));
  expect([...atT.keys()].sort()).toEqual([RICH_DB, 'dropped after T', 'postgres'].sort());

  await instance.runSql(RICH_DB, RICH_DAMAGE);
  await instance.cluster.sql('DROP DATABASE "dropped after T"');
  await instance.cluster.sql('CREATE DATABASE "created after T"');
  const oldPassword = instance.password;
  await instance.rotatePassword();
  const damaged = await instance.fingerprint(RICH_DB);

  const { log, text } = capturedLog();
  const outcome = await runRecovery(request({ [START_ENV.RESTORE_TIME]: t.toISOString() }), deps(log));
  await rds.settled();

  expect(outcome.results.map((r) => r.database).sort()).toEqual([...atT.keys()].sort());
  expect(outcome.results.every((r) => r.verified)).toBe(true);
  // The record of writes made after T (schema pitr_<stamp>_after) is the one thing added to a recovered database.
  const after = `pitr_${outcome.plan.stamp}_after`;
  for (const [db, facts] of atT) expectSame(facts, (await instance.fingerprint(db)).filter((l) => !l.includes(` ${after}`) && !l.includes(` ${after}.`)));
  // Spot checks on top of the fingerprints: rows deleted after T are back, objects created after T are gone.
  expect(Number(await instance.cluster.sql('SELECT count(*) FROM app.orders WHERE id % 3 = 0', RICH_DB))).toBeGreaterThan(0);
  expect(await instance.cluster.sql("SELECT to_regclass('app.created_after_t') IS NULL", RICH_DB)).toBe('t');

  const kept = outcome.results.find((r) => r.database === RICH_DB)!.keptAs!;
  expect(kept).toBe(`${RICH_DB}__before_pitr_${outcome.plan.stamp}`);
  // The record read the state at T on the temporary instance (not yet deleted then), not on the recovered databases,
  // which the application writes to again from the swap on.
  expect(recorded.map((o) => o.database).sort()).toEqual(outcome.results.filter((r) => r.keptAs).map((r) => r.database).sort());
  for (const o of recorded) expect(o.pointInTimeCopy?.port).not.toBe(instance.cluster.port);
  expectSame(damaged, await instance.fingerprint(kept));
  expect(await instance.cluster.sql("SELECT count(*) FROM app.orders WHERE note = 'written after T'", kept)).toBe('1');
  expect(outcome.results.find((r) => r.database === 'dropped after T')!.keptAs).toBeUndefined();
  expect(await instance.databases()).toContain('created after T');

  expect(rds.liveInstanceIds()).toEqual([]);
  const output = text();
  expect(output).not.toContain(instance.password);
  expect(output).not.toContain(oldPassword);
  expect(output).toMatch(/the temporary instance refuses the current secret .*; setting its master password/);
  expect(output).toContain(`DROP DATABASE "Orders ""Main"" ü__before_pitr_${outcome.plan.stamp}";`);
  expect(output).toMatch(/RESULT: SUCCESS: 3 database\(s\) recovered and verified\./);
  // After the swap (the pre-recovery copy, checked above, is unchanged by it): the writes made after T, recorded.
  expect(log.steps.map((s) => s.name)).toContain('Record writes made after the restore time');
  expect(output).toContain(`Writes made after the restore time in ${RICH_DB} (from ${kept}), kept in schema pitr_${outcome.plan.stamp}_after:`);
  expect(await instance.cluster.sql(`SELECT count(*) FROM "pitr_${outcome.plan.stamp}_after".app__orders WHERE note = 'written after T' AND pitr_change = 'inserted'`, RICH_DB)).toBe('1');
  expect(output).toMatch(/temporary instance test-db-pitr-\d{14}: deletion requested/);
});

test('replace: the database comes back exactly and nothing is kept beside it', async () => {
  const db = 'replace me';
  await instance.createDatabase(db, RICH_SEED);
  const t = await instance.markRestoreTime();
  const atT = await instance.fingerprint(db);
  await instance.runSql(db, RICH_DAMAGE);

  const { log, text } = capturedLog();
  const outcome = await runRecovery(request({ [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.DATABASES]: db, [START_ENV.STRATEGY]: 'replace' }), deps(log));
  await rds.settled();

  expect(outcome.results).toEqual([expect.objectContaining({ database: db, verified: true, keptAs: undefined })]);
  expectSame(atT, await instance.fingerprint(db));
  expect((await instance.databases()).filter((d) => d.startsWith(`${db}__`))).toEqual([]);
  expect(rds.liveInstanceIds()).toEqual([]);
  expect(text()).toMatch(new RegExp(`Safety snapshot of the original \\(kept\\): ${outcome.plan.safetySnapshotId}`));
  expect(text()).toContain('Writes made after the restore time: not recorded: strategy replace keeps no pre-recovery copy');
});

/** `rds` with some answers replaced; everything else delegated. */
function answering(overrides: Partial<RdsControl>): RdsControl {
  return {
    describeSource: (id) => rds.describeSource(id),
    restorableWindow: (id) => rds.restorableWindow(id),
    findInstancesByTag: (k, v) => rds.findInstancesByTag(k, v),
    startSnapshot: (s, id, tags) => rds.startSnapshot(s, id, tags),
    snapshotStatus: (id) => rds.snapshotStatus(id),
    restoreToPointInTime: (spec) => rds.restoreToPointInTime(spec),
    describeInstance: (id) => rds.describeInstance(id),
    setMasterPassword: (id, p) => rds.setMasterPassword(id, p),
    deleteInstance: (id) => rds.deleteInstance(id),
    ...overrides,
  };
}

describe('bad inputs are refused before anything is created', () => {
  test.each([
    ['a restore time before the restorable window', {}, { [START_ENV.RESTORE_TIME]: '2020-01-01T00:00:00Z' }, /RESTORE_TIME: 2020-01-01T00:00:00.000Z is before the earliest restorable time; accepted: a time from /],
    ['a source that is not PostgreSQL', { describeSource: async (id: string) => ({ ...(await rds.describeSource(id)), engine: 'mysql' }) }, {}, /engine "mysql"; accepted: an RDS for PostgreSQL instance/],
    ['another recovery in flight', { findInstancesByTag: async (key: string) => (key === TAGS.SOURCE ? [{ id: 'test-db-pitr-20261124000000', status: 'creating' }] : []) }, {}, /temporary instance test-db-pitr-20261124000000 \(creating\) is still alive/],
  ])('%s', async (_name, overrides, env, pattern) => {
    const firstCall = rds.calls.length;
    const { log, text } = capturedLog();
    const error = await runRecovery(request({ [START_ENV.RESTORE_TIME]: LATEST, ...env }), deps(log, answering(overrides)))
      .catch((err: Error) => err);
    expect(error).toBeInstanceOf(PlanError);
    expect((error as Error).message).toMatch(pattern);
    expect((error as Error).message).toMatch(/Nothing was created or changed\./);
    expect(rds.calls.slice(firstCall)).toEqual([]);
    expect(text()).toMatch(/RESULT: FAILED in step "Plan and validate"/);
    expect(text()).toMatch(/The original instance was not changed\./);
  });

  test('a database that did not exist at T: refused before the original is touched; the temporary instance is deleted', async () => {
    const before = await instance.fingerprint('replace me');
    const { log, text } = capturedLog();
    const error = await runRecovery(request({ [START_ENV.RESTORE_TIME]: LATEST, [START_ENV.DATABASES]: 'replace me,never existed' }), deps(log)).catch((err: Error) => err);
    await rds.settled();
    expect((error as Error).message).toMatch(/DATABASES: "never…" \(13 characters\) did not exist at the restore time; accepted: databases that did: .*"replace me"/);
    expect(text()).toMatch(/RESULT: FAILED in step "Choose databases"/);
    expect(rds.liveInstanceIds()).toEqual([]);
    expectSame(before, await instance.fingerprint('replace me'));
  });
});
