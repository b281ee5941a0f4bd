/**
 * The CodeBuild path end to end on an Aurora PostgreSQL DB cluster (issue
 * #20): the lab project's environment with SOURCE_CLUSTER_ID, the shipped
 * buildspec.yml run by bash, `node runner.js recover` through the AWS SDK
 * cluster adapter against the RDS stand-in's clusters (real PostgreSQL PITR,
 * TLS verify-full with a test CA) and moto's Secrets Manager: a recovery
 * (swap) through the password reset, `replace`, a drill on a copy-on-write
 * clone, a table recovery, a start through the trigger Lambda, a build
 * stopped mid-copy, a build killed mid-copy whose writer and cluster the
 * bundled trigger Lambda deletes when given the dead build's event, and a
 * build stopped while its cluster is restoring (the cleanup sweep). The project and the trigger are the Aurora
 * lab's as synthesized (PitrAuroraLabStack). Every result is compared by
 * content. Needs `npx projen bundle`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_DATABASE } from './lab-stack';
import { SMALL_DAMAGE, expectSame, smallSeed } from './recovery-harness';
import { matchesEventPattern, synthesizeLab, type LabDeployment } from './standin/lab-deployment';
import { invokeTrigger } from './standin/trigger';
import { CLUSTER_SOURCE_ID, buildStateChangeEvent, startWorld, type World, sourceFingerprint, markRestoreTime, until } from './standin/world';
import { tableSchemaName } from '../buildspec/runner/postgres/tables';
import { START_ENV, TAGS, safetySnapshotId, temporaryClusterPrefix } from '../src/contract';

const BUNDLE = join(__dirname, '..', 'assets', 'runner', 'runner.js');
const SOURCE = CLUSTER_SOURCE_ID;
const TEMP = new RegExp(`^${temporaryClusterPrefix(SOURCE)}\\d{14}$`);

let lab: LabDeployment;
let world: World;

beforeAll(async () => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing; run \`npx projen bundle\` first.`);
  lab = synthesizeLab({ aurora: true });
  world = await startWorld({ lab, source: 'cluster' });
  await world.script(smallSeed());
});

afterAll(async () => {
  await Promise.all([...(world?.runs.values() ?? [])].map((r) => r.done));
  await world?.dispose();
  lab?.dispose();
});

const fingerprint = (database?: string): Promise<string[]> => sourceFingerprint(world, database);

/** Temporary clusters and instances of this source that still exist (deleting ones included). */
function temporaries(): string[] {
  const prefix = temporaryClusterPrefix(SOURCE);
  return [
    ...world.standIn.engine.clusters.listClusters().map((c) => c.id),
    ...world.standIn.engine.listInstances().map((i) => i.id),
  ].filter((id) => id.startsWith(prefix));
}

/** The last call of `action` the stand-in answered without a fault. */
function lastCall(action: string): Readonly<Record<string, string>> {
  const calls = world.standIn.actionsCalled(action).filter((c) => !c.fault);
  if (calls.length === 0) throw new Error(`the stand-in received no successful ${action}`);
  return calls[calls.length - 1].params;
}

/** Waits until the run's temporary cluster and its writer are gone; then nothing temporary is left. */
async function expectCleanedUp(tempId: string): Promise<void> {
  await world.standIn.engine.waitUntilGone(`${tempId}-w`);
  await world.standIn.engine.clusters.waitUntilGone(tempId);
  expect(temporaries()).toEqual([]);
}

test('recovery (swap) at T with a rotated secret: a full-copy cluster and its writer, the password set on the cluster, verified to T, both deleted', async () => {
  const atT = await fingerprint();
  const t = await markRestoreTime();
  await world.script(SMALL_DAMAGE);
  await world.rotatePassword();
  expect(await fingerprint()).not.toEqual(atT);

  const result = await world.runBuild({ [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.CONFIRM]: SOURCE });

  expect(result.log).toContain('RESULT: SUCCESS');
  expect(result.status).toBe('SUCCEEDED');
  expectSame(atT, await fingerprint());
  expect(result.log).not.toContain(world.password);

  // The restore: a full copy at T, with the source's placement and the run's tags.
  const restore = lastCall('RestoreDBClusterToPointInTime');
  const tempId = restore.DBClusterIdentifier;
  expect(tempId).toMatch(TEMP);
  const source = world.sourceCluster!;
  expect(restore).toMatchObject({
    'SourceDBClusterIdentifier': SOURCE,
    'RestoreType': 'full-copy',
    'RestoreToTime': t.toISOString(),
    'DBSubnetGroupName': source.subnetGroup,
    'VpcSecurityGroupIds.VpcSecurityGroupId.1': source.securityGroups[0],
    'KmsKeyId': source.kmsKeyId,
    'Port': String(source.volume!.port),
  });
  expect(restore.UseLatestRestorableTime).toBeUndefined();
  expect(Object.entries(restore).filter(([k]) => k.startsWith('Tags.Tag.'))).toEqual(expect.arrayContaining([
    [expect.stringMatching(/Key$/), TAGS.BUILD_ID], [expect.stringMatching(/Value$/), result.buildId],
  ]));
  // Its one writer: the source writer's class, in the temporary cluster, created once the cluster was available.
  expect(lastCall('CreateDBInstance')).toMatchObject({
    DBInstanceIdentifier: `${tempId}-w`, DBClusterIdentifier: tempId, DBInstanceClass: world.source.instanceClass, Engine: 'aurora-postgresql',
  });
  expect(world.standIn.actionsCalled('CreateDBInstance').filter((c) => c.fault)).toEqual([]);
  // The temporary cluster refused the rotated secret: the password was set on the cluster (never on an instance).
  expect(world.standIn.actionsCalled('ModifyDBCluster').map((c) => c.params.DBClusterIdentifier)).toEqual([tempId]);
  expect(world.standIn.actionsCalled('ModifyDBInstance')).toEqual([]);
  expect(world.standIn.engine.clusters.history.get(tempId)).toEqual(expect.arrayContaining(['creating', 'available', 'resetting-master-credentials', 'deleting']));
  // The safety snapshot is a DB cluster snapshot, kept.
  const snapshot = lastCall('CreateDBClusterSnapshot');
  expect(snapshot.DBClusterIdentifier).toBe(SOURCE);
  expect(snapshot.DBClusterSnapshotIdentifier).toBe(safetySnapshotId(SOURCE, tempId.slice(-14)));
  expect(world.standIn.engine.clusters.snapshot(snapshot.DBClusterSnapshotIdentifier).status).toBe('available');
  // The writer is deleted first, then the cluster, without a final snapshot.
  const deletes = world.standIn.calls.filter((c) => !c.fault && (c.action === 'DeleteDBInstance' || c.action === 'DeleteDBCluster'));
  expect(deletes.map((c) => [c.action, c.params.DBInstanceIdentifier ?? c.params.DBClusterIdentifier])).toEqual([
    ['DeleteDBInstance', `${tempId}-w`], ['DeleteDBCluster', tempId],
  ]);
  expect(deletes[1].params.SkipFinalSnapshot).toBe('true');
  await expectCleanedUp(tempId);
});

test('replace: the database is dropped and restored to T, nothing kept', async () => {
  const atT = await fingerprint();
  const t = await markRestoreTime();
  await world.sql('UPDATE shop.items SET name = \'replaced after T\' WHERE id % 3 = 0');

  const result = await world.runBuild({
    [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.CONFIRM]: SOURCE, [START_ENV.STRATEGY]: 'replace', [START_ENV.DATABASES]: LAB_DATABASE,
  });

  expect(result.log).toContain('RESULT: SUCCESS: 1 database(s) recovered and verified.');
  expect(result.status).toBe('SUCCEEDED');
  expectSame(atT, await fingerprint());
  expect(result.log).not.toMatch(/pre-recovery data kept as/);
  await expectCleanedUp(lastCall('RestoreDBClusterToPointInTime').DBClusterIdentifier);
});

test('drill: a copy-on-write clone at the latest time, verified on the clone; the original is untouched and the clone deleted', async () => {
  const before = await fingerprint();
  const databasesBefore = await world.sql('SELECT string_agg(datname, \',\' ORDER BY datname) FROM pg_database', 'postgres');

  const result = await world.runBuild({ [START_ENV.MODE]: 'drill', [START_ENV.DATABASES]: LAB_DATABASE });

  expect(result.status).toBe('SUCCEEDED');
  const restore = lastCall('RestoreDBClusterToPointInTime');
  expect(restore).toMatchObject({ SourceDBClusterIdentifier: SOURCE, RestoreType: 'copy-on-write', UseLatestRestorableTime: 'true' });
  expect(restore.RestoreToTime).toBeUndefined();
  expect(world.standIn.engine.clusters.cluster(SOURCE).cloneGroupId).toBeDefined();
  expectSame(before, await fingerprint());
  expect(await world.sql('SELECT string_agg(datname, \',\' ORDER BY datname) FROM pg_database', 'postgres')).toBe(databasesBefore);
  await expectCleanedUp(restore.DBClusterIdentifier);
});

test('table recovery: shop.items as at T beside the live table, nothing else written', async () => {
  const itemsAtT = await world.sql('SELECT md5(string_agg(id || \':\' || name, \',\' ORDER BY id)) FROM shop.items');
  const t = await markRestoreTime();
  await world.sql('DELETE FROM shop.items WHERE id % 5 = 0 AND id NOT IN (SELECT "Item" FROM shop."Order Lines"); UPDATE shop.items SET name = \'changed after T\' WHERE id <= 20');
  const liveBefore = await world.sql('SELECT md5(string_agg(id || \':\' || name, \',\' ORDER BY id)) FROM shop.items');

  const result = await world.runBuild({
    [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.CONFIRM]: SOURCE, [START_ENV.DATABASES]: LAB_DATABASE, [START_ENV.TABLES]: 'shop.items',
  });

  expect(result.log).toContain('RESULT: SUCCESS');
  expect(result.status).toBe('SUCCEEDED');
  const tempId = lastCall('RestoreDBClusterToPointInTime').DBClusterIdentifier;
  const schema = tableSchemaName(tempId.slice(-14));
  expect(await world.sql(`SELECT md5(string_agg(id || ':' || name, ',' ORDER BY id)) FROM ${schema}.items`)).toBe(itemsAtT);
  expect(await world.sql('SELECT md5(string_agg(id || \':\' || name, \',\' ORDER BY id)) FROM shop.items')).toBe(liveBefore);
  await expectCleanedUp(tempId);
});

test('a build stopped (SIGTERM) mid-copy: the runner deletes the writer and the cluster, the original is untouched', async () => {
  const before = await fingerprint();
  const { build } = world.startBuild({ [START_ENV.RESTORE_TIME]: 'latest', [START_ENV.CONFIRM]: SOURCE, [START_ENV.DATABASES]: LAB_DATABASE });
  await build.waitForLine(/"lab": copy data/);
  build.signal('SIGTERM');
  const result = await build.done;

  expect(result.log).toContain('SIGTERM received: stopping at the next safe point, then cleaning up.');
  expect(result.log).toMatch(/RESULT: FAILED in step "Copy, verify and swap in": stopped by SIGTERM/);
  expect(result.log).toContain('Untouched on the original: "lab".');
  const tempId = lastCall('RestoreDBClusterToPointInTime').DBClusterIdentifier;
  expect(result.log).toContain(`temporary cluster ${tempId}: deletion of its instance ${tempId}-w requested`);
  expect(world.standIn.engine.clusters.history.get(tempId)).toContain('deleting');
  expectSame(before, await fingerprint());
  await expectCleanedUp(tempId);
});

test('the Lambda start path: the trigger checks the cluster and its window on RDS, starts one build, and it recovers to T', async () => {
  const atT = await fingerprint();
  const t = await markRestoreTime();
  await world.script(SMALL_DAMAGE);
  const rdsBefore = world.standIn.calls.length;

  const invocation = await invokeTrigger(world, world.codebuild, { restoreTime: t.toISOString(), confirm: SOURCE, databases: [LAB_DATABASE] });

  expect(invocation.error).toBeUndefined();
  const started = invocation.result as { buildId: string; restoreTime: string };
  expect(started.restoreTime).toBe(t.toISOString());
  // Before starting, the Lambda read the cluster (status, engine, window) and wrote nothing on RDS.
  const before = world.standIn.calls.slice(rdsBefore);
  expect(before.map((c) => c.action)).toContain('DescribeDBClusters');
  expect(before.filter((c) => !/^(Describe|List)/.test(c.action))).toEqual([]);
  const known = world.codebuild.builds.get(started.buildId)!;
  expect(Object.fromEntries(known.environmentVariablesOverride!.map((v) => [v.name, v.value]))).toMatchObject({
    [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.CONFIRM]: SOURCE, [START_ENV.DATABASES]: LAB_DATABASE,
  });

  const result = await world.runs.get(started.buildId)!.done;

  expect(result.log).toContain('RESULT: SUCCESS: 1 database(s) recovered and verified.');
  expect(result.status).toBe('SUCCEEDED');
  expectSame(atT, await fingerprint());
  const restore = lastCall('RestoreDBClusterToPointInTime');
  expect(restore).toMatchObject({ SourceDBClusterIdentifier: SOURCE, RestoreToTime: t.toISOString() });
  expect(Object.values(restore)).toContain(started.buildId);
  await expectCleanedUp(restore.DBClusterIdentifier);
});

test('a build killed (SIGKILL) mid-copy leaves its cluster and writer; the trigger Lambda, given the dead build\'s event, deletes the writer, then the cluster', async () => {
  const before = await fingerprint();
  const { build, buildId } = world.startBuild({ [START_ENV.RESTORE_TIME]: 'latest', [START_ENV.CONFIRM]: SOURCE, [START_ENV.DATABASES]: LAB_DATABASE });
  await build.waitForLine(/"lab": copy data/);
  build.signal('SIGKILL');
  const result = await build.done;
  expect(result.status).toBe('SIGNALLED');
  expect(result.log).not.toContain('deletion requested');
  const tempId = lastCall('RestoreDBClusterToPointInTime').DBClusterIdentifier;
  expect(temporaries().sort()).toEqual([tempId, `${tempId}-w`]);
  expect(world.codebuild.builds.get(buildId)).toMatchObject({ buildStatus: 'STOPPED', buildComplete: true });

  // EventBridge delivers the cleanup rule's event for the dead build to the function.
  const event = buildStateChangeEvent(buildId, 'STOPPED', 'c0ffee00-0000-4000-8000-000000000020');
  expect(matchesEventPattern(lab.cleanupEventPattern, event, world.physical)).toBe(true);
  const deletesBefore = world.standIn.calls.length;

  const invocation = await invokeTrigger(world, world.codebuild, event);

  expect(invocation.error).toBeUndefined();
  const deletes = world.standIn.calls.slice(deletesBefore).filter((c) => !c.fault && (c.action === 'DeleteDBInstance' || c.action === 'DeleteDBCluster'));
  expect(deletes.map((c) => [c.action, c.params.DBInstanceIdentifier ?? c.params.DBClusterIdentifier])).toEqual([
    ['DeleteDBInstance', `${tempId}-w`], ['DeleteDBCluster', tempId],
  ]);
  await expectCleanedUp(tempId);
  expect(world.standIn.engine.clusters.cluster(SOURCE).status).toBe('available');
  expectSame(before, await fingerprint());
});

test('a build stopped while its cluster is being restored: RDS refuses the cluster\'s delete (creating); the sweep deletes it once it is available', async () => {
  // The restore stays `creating` until released, as a large restore would for hours.
  let release: (() => void) | undefined;
  world.standIn.engine.faults = { onCopyUp: () => new Promise<void>((resolve) => (release = resolve)) };
  try {
    const { build, buildId } = world.startBuild({ [START_ENV.RESTORE_TIME]: 'latest', [START_ENV.CONFIRM]: SOURCE, [START_ENV.DATABASES]: LAB_DATABASE });
    await until('the temporary cluster to be restoring', () => (release ? temporaries()[0] : undefined));
    const tempId = temporaries()[0];
    expect(world.standIn.engine.clusters.cluster(tempId).status).toBe('creating');
    build.signal('SIGTERM');
    await build.done;

    // The runner asked; the stand-in refused (its guess: no delete while creating); the cluster is still there.
    expect(world.standIn.actionsCalled('DeleteDBCluster').filter((c) => c.params.DBClusterIdentifier === tempId).map((c) => c.fault))
      .toContain('InvalidDBClusterStateFault');
    expect(world.standIn.engine.clusters.cluster(tempId).status).toBe('creating');
    expect(world.codebuild.builds.get(buildId)).toMatchObject({ buildStatus: 'STOPPED', buildComplete: true });

    // A sweep while it is still being restored deletes nothing; once it is available (no writer was ever made), the next one deletes it.
    const early = await invokeTrigger(world, world.codebuild, lab.cleanupSweep.input);
    expect(early.error).toBeUndefined();
    expect(world.standIn.engine.clusters.cluster(tempId).status).toBe('creating');
    release!();
    await until('the temporary cluster to be available', () => (world.standIn.engine.clusters.cluster(tempId).status === 'available' ? true : undefined));
    const later = await invokeTrigger(world, world.codebuild, lab.cleanupSweep.input);
    expect(later.error).toBeUndefined();
    expect(JSON.stringify(later.result)).toContain(tempId);
    await expectCleanedUp(tempId);
  } finally {
    world.standIn.engine.faults = {};
  }
});
