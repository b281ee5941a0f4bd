/**
 * The Lambda start path end to end: the bundled trigger handler, with the
 * synthesized function's environment, receives a recovery request; it checks
 * the source and the restore window against the RDS stand-in and starts a
 * build through a CodeBuild API stand-in, which runs the synthesized
 * project's build (the shipped buildspec and `runner.js recover` through the
 * AWS SDK, TLS verify-full). Bad requests start nothing. Needs
 * `npx projen bundle`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_DATABASE } from './lab-stack';
import { SMALL_DAMAGE, expectSame, smallSeed } from './recovery-harness';
import type { RunningBuild } from './standin/codebuild';
import type { CodeBuildApi } from '../local/codebuild-api';
import { synthesizeLab, type LabDeployment } from './standin/lab-deployment';
import { invokeTrigger } from './standin/trigger';
import { PROJECT_NAME, SOURCE_ID, startLabCodeBuildApi, startWorld, type World, sourceFingerprint } from './standin/world';
import { START_ENV, temporaryInstancePrefix } from '../src/contract';

const BUNDLE = join(__dirname, '..', 'assets', 'runner', 'runner.js');
const START_BUILD = 'CodeBuild_20161006.StartBuild';

let lab: LabDeployment;
let world: World;
let codebuild: CodeBuildApi;
let runs: Map<string, RunningBuild>;

beforeAll(async () => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing; run \`npx projen bundle\` first.`);
  lab = synthesizeLab();
  world = await startWorld({ lab });
  ({ api: codebuild, runs } = await startLabCodeBuildApi(world));
  await world.script(smallSeed());
});

afterAll(async () => {
  await Promise.all([...runs.values()].map((r) => r.done));
  await codebuild?.stop();
  await world?.dispose();
  lab?.dispose();
});

const fingerprint = (): Promise<string[]> => sourceFingerprint(world);

function temporaryInstances(): string[] {
  return world.standIn.engine.listInstances().map((i) => i.id).filter((id) => id.startsWith(temporaryInstancePrefix(SOURCE_ID)));
}

/** What must hold after a refused request: no build, nothing created or restored on RDS. */
function expectNothingStarted(startBuildsBefore: number, rdsCallsBefore: number): void {
  expect(codebuild.received.filter((t) => t === START_BUILD)).toHaveLength(startBuildsBefore);
  const rdsWrites = world.standIn.calls.slice(rdsCallsBefore).filter((c) => !/^(Describe|List)/.test(c.action));
  expect(rdsWrites).toEqual([]);
  expect(temporaryInstances()).toEqual([]);
}

test('a valid request: the window is checked on RDS, one build starts with the request as overrides, and it recovers to T', async () => {
  const atT = await fingerprint();
  await new Promise((r) => setTimeout(r, 30));
  const t = new Date();
  await new Promise((r) => setTimeout(r, 30));
  await world.script(SMALL_DAMAGE);
  expect(await fingerprint()).not.toEqual(atT);
  const rdsBefore = world.standIn.calls.length;

  const invocation = await invokeTrigger(world, codebuild, { restoreTime: t.toISOString(), confirm: SOURCE_ID, databases: [LAB_DATABASE] });

  expect(invocation.error).toBeUndefined();
  const started = invocation.result as { buildId: string; restoreTime: string; logsUrl: string };
  expect(started.restoreTime).toBe(t.toISOString());
  expect(started.buildId).toMatch(new RegExp(`^${PROJECT_NAME}:[0-9a-f-]{36}$`));
  expect(started.logsUrl).toContain(encodeURIComponent(started.buildId));
  // Before starting, the Lambda looked at the source and its restore window on the stand-in, and changed nothing there.
  expect(world.standIn.calls.slice(rdsBefore, rdsBefore + 2).map((c) => c.action)).toEqual(['DescribeDBInstances', 'DescribeDBInstanceAutomatedBackups']);
  expect(codebuild.received.filter((t2) => t2 === START_BUILD)).toHaveLength(1);
  const known = codebuild.builds.get(started.buildId)!;
  expect(Object.fromEntries(known.environmentVariablesOverride!.map((v) => [v.name, v.value]))).toEqual({
    [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.CONFIRM]: SOURCE_ID, [START_ENV.DATABASES]: LAB_DATABASE, [START_ENV.STRATEGY]: 'swap',
  });
  expect(invocation.logged.join('\n')).toContain(`Started recovery build ${started.buildId} of "${SOURCE_ID}" to ${t.toISOString()}`);

  const result = await runs.get(started.buildId)!.done;

  expect(result.log).toContain('RESULT: SUCCESS: 1 database(s) recovered and verified.');
  expect(result.status).toBe('SUCCEEDED');
  expect(known).toMatchObject({ buildStatus: 'SUCCEEDED', buildComplete: true });
  expectSame(atT, await fingerprint());
  // The build restored exactly the instant the Lambda checked, tagged with the build CodeBuild started.
  const restore = world.standIn.actionsCalled('RestoreDBInstanceToPointInTime').at(-1)!.params;
  expect(restore).toMatchObject({ SourceDBInstanceIdentifier: SOURCE_ID, RestoreTime: t.toISOString() });
  expect(Object.values(restore)).toContain(started.buildId);
  await world.standIn.engine.waitUntilGone(restore.TargetDBInstanceIdentifier);
  expect(temporaryInstances()).toEqual([]);
});

test('a restore time outside the window on RDS: refused after looking, nothing started', async () => {
  const startBuilds = codebuild.received.filter((t) => t === START_BUILD).length;
  const rdsBefore = world.standIn.calls.length;
  const earliest = world.source.automatedBackup!.earliest;
  const before = new Date(earliest.getTime() - 60 * 60_000);

  const invocation = await invokeTrigger(world, codebuild, { restoreTime: before.toISOString(), confirm: SOURCE_ID });

  expect(invocation.error?.message).toMatch(new RegExp(`restoreTime: ${before.toISOString().replace(/\./g, '\\.')} is before the earliest restorable time; `
    + `accepted: a time from ${earliest.toISOString().replace(/\./g, '\\.')} to .*Nothing was created\\.`));
  // The window came from the stand-in (the automated backup's RestoreWindow), not from the request.
  expect(world.standIn.calls.slice(rdsBefore).map((c) => c.action)).toEqual(['DescribeDBInstances', 'DescribeDBInstanceAutomatedBackups']);
  expectNothingStarted(startBuilds, rdsBefore);
});

test.each([
  ['a wrong confirm', { restoreTime: 'latest', confirm: 'pitr-lab-db-typo' }, /confirm: "pitr-lab-db-typo" does not match/],
  ['an unknown field', { restoreTime: 'latest', confirm: SOURCE_ID, databse: ['lab'] }, /databse: unknown field .*accepted fields: /],
  ['an unknown acceptHazards name', { restoreTime: 'latest', confirm: SOURCE_ID, acceptHazards: ['subscription'] }, /acceptHazards: "subscription" is not a hazard; accepted: /],
])('%s: refused before any AWS call, nothing started', async (_name, request, message) => {
  const startBuilds = codebuild.received.filter((t) => t === START_BUILD).length;
  const rdsBefore = world.standIn.calls.length;

  const invocation = await invokeTrigger(world, codebuild, request);

  expect(invocation.result).toBeUndefined();
  expect(invocation.error?.message).toMatch(message);
  expect(invocation.error?.message).toMatch(/Nothing was started\.$/);
  expect(world.standIn.calls.slice(rdsBefore)).toEqual([]);
  expectNothingStarted(startBuilds, rdsBefore);
});
