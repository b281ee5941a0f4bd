/**
 * The CodeBuild path end to end: the synthesized lab project's environment,
 * the shipped buildspec.yml run by bash, `node runner.js recover` through
 * the AWS SDK v3 adapter against the RDS stand-in (real PostgreSQL PITR,
 * TLS verify-full with a test CA) and moto's Secrets Manager. Needs
 * `npx projen bundle` (the runner and trigger bundles the lab stages).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_DATABASE } from './lab-stack';
import { SMALL_DAMAGE, expectSame, smallSeed } from './recovery-harness';
import { synthesizeLab, type LabDeployment } from './standin/lab-deployment';
import { SOURCE_ID, startWorld, type World, sourceFingerprint, markRestoreTime } from './standin/world';
import { START_ENV, TAGS, temporaryInstancePrefix } from '../src/contract';

const BUNDLE = join(__dirname, '..', 'assets', 'runner', 'runner.js');

let lab: LabDeployment;
let world: World;

beforeAll(async () => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing; run \`npx projen bundle\` first.`);
  lab = synthesizeLab();
  world = await startWorld({ lab });
  await world.script(smallSeed());
});

afterAll(async () => {
  await world?.dispose();
  lab?.dispose();
});

const fingerprint = (database?: string): Promise<string[]> => sourceFingerprint(world, database);

function temporaryInstances(): string[] {
  return world.standIn.engine.listInstances().map((i) => i.id).filter((id) => id.startsWith(temporaryInstancePrefix(SOURCE_ID)));
}

test('an explicit restore time with a rotated secret: verified recovery to T through the password reset, temporary instance deleted', async () => {
  const atT = await fingerprint();
  const t = await markRestoreTime();
  await world.script(SMALL_DAMAGE);
  await world.rotatePassword();
  expect(await fingerprint()).not.toEqual(atT);

  const result = await world.runBuild({ [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.CONFIRM]: SOURCE_ID });

  expect(result.log).toContain('RESULT: SUCCESS');
  expect(result.status).toBe('SUCCEEDED');
  // Independent of the runner's verification (sequences may be up to 32 values ahead after PITR, by PostgreSQL's design).
  expectSame(atT, await fingerprint());
  // The temporary instance refused the rotated secret, and RDS reset its master password.
  expect(result.log).toMatch(/the temporary instance refuses the current secret .*password authentication failed for user "pitr_master"/);
  const modify = world.standIn.actionsCalled('ModifyDBInstance');
  expect(modify).toHaveLength(1);
  expect(modify[0].params).toMatchObject({ DBInstanceIdentifier: expect.stringMatching(/^pitr-lab-db-pitr-\d{14}$/), MasterUserPassword: '********', ApplyImmediately: 'true' });
  const tempId = modify[0].params.DBInstanceIdentifier;
  expect(world.standIn.engine.history.get(tempId)).toEqual(expect.arrayContaining(['creating', 'backing-up', 'available', 'modifying', 'resetting-master-credentials', 'deleting']));
  expect(result.log).not.toContain(world.password);
  // Deleted without a final snapshot, and gone.
  expect(world.standIn.actionsCalled('DeleteDBInstance').map((c) => c.params)).toEqual([
    { Action: 'DeleteDBInstance', Version: '2014-10-31', DBInstanceIdentifier: tempId, SkipFinalSnapshot: 'true', DeleteAutomatedBackups: 'true' },
  ]);
  await world.standIn.engine.waitUntilGone(tempId);
  expect(temporaryInstances()).toEqual([]);
  // The restore asked for the source's placement and the run's tags.
  const restore = world.standIn.actionsCalled('RestoreDBInstanceToPointInTime')[0].params;
  expect(restore).toMatchObject({ SourceDBInstanceIdentifier: SOURCE_ID, TargetDBInstanceIdentifier: tempId, RestoreTime: t.toISOString(), PubliclyAccessible: 'false' });
  expect(Object.entries(restore).filter(([k]) => k.startsWith('Tags.Tag.'))).toEqual(expect.arrayContaining([
    [expect.stringMatching(/Key$/), TAGS.BUILD_ID], [expect.stringMatching(/Value$/), result.buildId],
  ]));
  // The summary as documented.
  expect(result.log).toMatch(new RegExp(`Source: ${SOURCE_ID}; restore time: ${t.toISOString().replace(/\./g, '\\.')}; strategy: swap; temporary instance: ${tempId}`));
  expect(result.log).toMatch(new RegExp(`  ${LAB_DATABASE}: verified, \\d+ tables, \\d+ rows; unavailable for .*; pre-recovery data kept as "${LAB_DATABASE}__before_pitr_\\d{14}"`));
  expect(result.log).toMatch(/Safety snapshot of the original \(kept\): pitr-lab-db-pre-pitr-\d{14}/);
  expect(result.log).toMatch(/temporary instance pitr-lab-db-pitr-\d{14}: deletion requested/);
});

test('latest: the temporary instance accepts the current secret, no reset; the original ends as it was when the restore ran', async () => {
  const before = await fingerprint();
  const modifiesBefore = world.standIn.actionsCalled('ModifyDBInstance').length;

  const result = await world.runBuild({ [START_ENV.RESTORE_TIME]: 'latest', [START_ENV.CONFIRM]: SOURCE_ID, [START_ENV.DATABASES]: LAB_DATABASE });

  expect(result.log).toContain('RESULT: SUCCESS: 1 database(s) recovered and verified.');
  expect(result.status).toBe('SUCCEEDED');
  expect(result.log).toContain('the current secret is accepted by the temporary instance');
  expect(world.standIn.actionsCalled('ModifyDBInstance')).toHaveLength(modifiesBefore);
  const restore = world.standIn.actionsCalled('RestoreDBInstanceToPointInTime').at(-1)!.params;
  expect(restore).toMatchObject({ UseLatestRestorableTime: 'true' });
  expect(restore.RestoreTime).toBeUndefined();
  expect(result.log).toMatch(new RegExp(`Source: ${SOURCE_ID}; restore time: the latest restorable time; strategy: swap`));
  expectSame(before, await fingerprint());
  await world.standIn.engine.waitUntilGone(restore.TargetDBInstanceIdentifier);
  expect(temporaryInstances()).toEqual([]);
});

test('replace: the database is dropped and restored to T, nothing kept, the safety snapshot is taken first', async () => {
  const atT = await fingerprint();
  const t = await markRestoreTime();
  await world.sql('UPDATE shop.items SET name = \'replaced after T\' WHERE id % 3 = 0');

  const result = await world.runBuild({
    [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.CONFIRM]: SOURCE_ID, [START_ENV.STRATEGY]: 'replace', [START_ENV.DATABASES]: LAB_DATABASE,
  });

  expect(result.log).toContain('RESULT: SUCCESS: 1 database(s) recovered and verified.');
  expect(result.status).toBe('SUCCEEDED');
  expectSame(atT, await fingerprint());
  expect(result.log).toMatch(/strategy: replace; temporary instance: pitr-lab-db-pitr-\d{14}/);
  expect(result.log).not.toMatch(/pre-recovery data kept as/);
  const snapshot = world.standIn.actionsCalled('CreateDBSnapshot').at(-1)!.params;
  expect(world.standIn.engine.snapshot(snapshot.DBSnapshotIdentifier).status).toBe('available');
  await world.standIn.engine.waitUntilGone(world.standIn.actionsCalled('RestoreDBInstanceToPointInTime').at(-1)!.params.TargetDBInstanceIdentifier);
  expect(temporaryInstances()).toEqual([]);
});
