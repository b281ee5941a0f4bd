/**
 * The CodeBuild path end to end when things go wrong: RDS refuses the
 * restore, the temporary instance ends `failed`, the build is stopped
 * (SIGTERM) or killed (SIGKILL) mid-copy, after which the bundled trigger
 * Lambda, handed the EventBridge event in the synthesized cleanup rule's
 * shape, asks a CodeBuild stand-in about the build and deletes the
 * temporary instance on the RDS stand-in. Needs `npx projen bundle`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_DATABASE } from './lab-stack';
import { SMALL_DAMAGE, expectSame, smallSeed } from './recovery-harness';
import { startCodeBuildApi, type CodeBuildApi } from '../local/codebuild-api';
import { matchesEventPattern, synthesizeLab, type LabDeployment } from './standin/lab-deployment';
import { invokeTrigger } from './standin/trigger';
import { PROJECT_NAME, SOURCE_ID, buildArnOf, buildStateChangeEvent, startWorld, type World, sourceFingerprint } from './standin/world';
import { START_ENV, temporaryInstancePrefix } from '../src/contract';

const BUNDLE = join(__dirname, '..', 'assets', 'runner', 'runner.js');
/** Rows whose insert takes 20 ms each: the copy lasts long enough to be interrupted. */
const SLOW_ROWS = 200;

let lab: LabDeployment;
let world: World;
let codebuild: CodeBuildApi;

beforeAll(async () => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing; run \`npx projen bundle\` first.`);
  lab = synthesizeLab();
  world = await startWorld({ lab });
  codebuild = await startCodeBuildApi({ projectName: PROJECT_NAME });
  await world.script(smallSeed(SLOW_ROWS));
  await world.script(SMALL_DAMAGE);
});

afterAll(async () => {
  await codebuild?.stop();
  await world?.dispose();
  lab?.dispose();
});

afterEach(() => {
  world.standIn.engine.faults = {};
});

const fingerprint = (): Promise<string[]> => sourceFingerprint(world);

function liveTemporaryInstances(): string[] {
  return world.standIn.engine.listInstances().map((i) => i.id).filter((id) => id.startsWith(temporaryInstancePrefix(SOURCE_ID)));
}

const explicitTime = (): Record<string, string> => ({
  // A time inside the window: the original's state now, damage included.
  [START_ENV.RESTORE_TIME]: new Date(Date.now() - 500).toISOString(),
  [START_ENV.CONFIRM]: SOURCE_ID,
  [START_ENV.DATABASES]: LAB_DATABASE,
});

test('RDS refuses the restore: the build fails naming the fault, nothing is created, the original is unchanged', async () => {
  const before = await fingerprint();
  world.standIn.engine.faults = { refuseRestore: { code: 'InvalidRestoreFault', message: 'The restore is not possible for this instance right now.' } };

  const result = await world.runBuild(explicitTime());

  expect(result.status).toBe('FAILED');
  expect(result.failedPhase).toBe('BUILD');
  expect(result.log).toMatch(/RESULT: FAILED in step "Restore temporary instance at the restore time": RDS refused the restore .*InvalidRestoreFault: The restore is not possible for this instance right now\..* Likely cause: the restore time is probably outside the instance's restorable window/);
  expect(result.log).toContain('The original instance was not changed.');
  expect(result.log).toMatch(/no temporary instance was created \(checked tag cdk-rds-pitr:build-id=/);
  expect(world.standIn.actionsCalled('DeleteDBInstance')).toEqual([]);
  expect(liveTemporaryInstances()).toEqual([]);
  expectSame(before, await fingerprint());
});

test('the temporary instance ends "failed": the run stops at once, deletes it, the original is unchanged', async () => {
  const before = await fingerprint();
  world.standIn.engine.faults = { restoreEndsIn: 'failed' };

  const result = await world.runBuild(explicitTime());

  expect(result.status).toBe('FAILED');
  expect(result.log).toMatch(/RESULT: FAILED in step "Wait for the temporary instance": temporary instance (pitr-lab-db-pitr-\d{14}) is "failed", from which RDS does not recover/);
  const tempId = /temporary instance (pitr-lab-db-pitr-\d{14}) is "failed"/.exec(result.log)![1];
  expect(world.standIn.engine.history.get(tempId)).toEqual(['creating', 'failed', 'deleting', '(gone)'].slice(0, world.standIn.engine.history.get(tempId)!.length));
  expect(world.standIn.actionsCalled('DeleteDBInstance').map((c) => c.params.DBInstanceIdentifier)).toContain(tempId);
  await world.standIn.engine.waitUntilGone(tempId);
  expect(world.standIn.engine.history.get(tempId)).toEqual(['creating', 'failed', 'deleting', '(gone)']);
  expect(result.log).toContain('The original instance was not changed.');
  expectSame(before, await fingerprint());
});

test('SIGTERM mid-copy (a stopped build): cleanup deletes the temporary instance and the original database is untouched', async () => {
  const before = await fingerprint();
  const { build } = world.startBuild(explicitTime());
  await build.waitForLine(/"lab": copy data/);
  build.signal('SIGTERM');
  const result = await build.done;

  expect(result.log).toContain('SIGTERM received: stopping at the next safe point, then cleaning up.');
  expect(result.log).toMatch(/RESULT: FAILED in step "Copy, verify and swap in": stopped by SIGTERM/);
  const tempId = /temporary instance (pitr-lab-db-pitr-\d{14}): deletion requested/.exec(result.log)?.[1];
  expect(tempId).toBeDefined();
  expect(result.log).toContain('Untouched on the original: "lab".');
  await world.standIn.engine.waitUntilGone(tempId!);
  expect(liveTemporaryInstances()).toEqual([]);
  expectSame(before, await fingerprint());
});

test('SIGKILL mid-copy: the temporary instance is left; the trigger Lambda, given the dead build\'s event, deletes it and nothing else', async () => {
  const before = await fingerprint();
  const { build, buildId } = world.startBuild(explicitTime());
  await build.waitForLine(/"lab": copy data/);
  build.signal('SIGKILL');
  const result = await build.done;
  expect(result.status).toBe('SIGNALLED');
  expect(result.log).not.toContain('deletion requested');
  const left = liveTemporaryInstances();
  expect(left).toHaveLength(1);
  expect(world.standIn.engine.instance(left[0]).status).toBe('available');

  // CodeBuild records the dead build; EventBridge delivers the rule's event to the function.
  const buildArn = buildArnOf(buildId);
  codebuild.builds.set(buildId, { id: buildId, arn: buildArn, projectName: PROJECT_NAME, buildStatus: 'FAILED', buildComplete: true });
  const event = buildStateChangeEvent(buildId, 'FAILED', 'c0ffee00-0000-4000-8000-000000000001');
  expect(matchesEventPattern(lab.cleanupEventPattern, event, world.physical)).toBe(true);

  const invocation = await invokeTrigger(world, codebuild, event);

  expect(invocation.error).toBeUndefined();
  expect(invocation.result).toEqual({ deleted: left });
  expect(codebuild.received).toEqual(['CodeBuild_20161006.BatchGetBuilds']);
  await world.standIn.engine.waitUntilGone(left[0]);
  expect(liveTemporaryInstances()).toEqual([]);
  expect(world.standIn.engine.instance(SOURCE_ID).status).toBe('available');
  expectSame(before, await fingerprint());
});

// Before the fix in workflow.ts matchCredentials, any failed login counted as "the secret is refused": a CA bundle
// that does not match reset the temporary instance's master password and then waited up to 20 minutes for a login
// that could never succeed.
test('a CA bundle that does not match the instances fails at once, without resetting any password', async () => {
  const modifies = world.standIn.actionsCalled('ModifyDBInstance').length;
  const restores = world.standIn.actionsCalled('RestoreDBInstanceToPointInTime').filter((c) => c.params.SourceDBInstanceIdentifier === SOURCE_ID).length;
  // A real PEM bundle (the install check passes), just not the CA that issued the instances' certificates.
  const { build } = world.startBuild(explicitTime(), { caBundle: '/etc/ssl/certs/ca-certificates.crt' });
  const line = await build.waitForLine(/RESULT: FAILED|master password reset on/);
  build.signal('SIGTERM');
  await build.done;
  const left = liveTemporaryInstances();
  await Promise.all(left.map((id) => world.standIn.engine.waitUntilGone(id)));
  expect(world.standIn.actionsCalled('ModifyDBInstance')).toHaveLength(modifies);
  // Caught by the plan step's login to the original, before anything is created, and told apart from a wrong password.
  expect(line).toMatch(/RESULT: FAILED in step "Plan and validate": cannot log in to the original pitr-lab-db .*verify-full.*accepted: a network path .* and PG_CA_BUNDLE holding the CA/);
  expect(world.standIn.actionsCalled('RestoreDBInstanceToPointInTime').filter((c) => c.params.SourceDBInstanceIdentifier === SOURCE_ID)).toHaveLength(restores);
});
