/**
 * A confirmed recovery and a running build of the project: a restore drill
 * is stopped and waited for; a recovery or housekeeping build is never
 * stopped. CodeBuild and RDS are mocked (aws-sdk-client-mock) with the
 * shapes BatchGetBuilds and DescribeDBInstances answer with.
 */
import { BatchGetBuildsCommand, Build, CodeBuildClient, ListBuildsForProjectCommand, StopBuildCommand } from '@aws-sdk/client-codebuild';
import { DBInstance, DescribeDBInstancesCommand, RDSClient } from '@aws-sdk/client-rds';
import { mockClient } from 'aws-sdk-client-mock';
import { PROJECT, REGION, SOURCE, config, recordingLog } from './trigger-fixtures';
import { ProjectBusyError, RETRY_AFTER_CREATING_MINUTES, modeOfBuild, stopRunningDrills } from '../lambda/stop-drill';
import type { TriggerDeps } from '../lambda/trigger-deps';
import { START_ENV, TAGS, temporaryInstanceId } from '../src/contract';

const DRILL = `${PROJECT}:d0000000-0000-4000-8000-000000000001`;
const RECOVERY = `${PROJECT}:r0000000-0000-4000-8000-000000000002`;
const OLD = `${PROJECT}:o0000000-0000-4000-8000-000000000003`;
const DRILL_INSTANCE = temporaryInstanceId(SOURCE, '20261124093000');

const codebuildMock = mockClient(CodeBuildClient);
const rdsMock = mockClient(RDSClient);

function build(id: string, mode: string | undefined, status: Build['buildStatus'], type = 'PLAINTEXT'): Build {
  return {
    id,
    projectName: PROJECT,
    buildStatus: status,
    buildComplete: status !== 'IN_PROGRESS',
    startTime: new Date('2026-11-24T09:00:00Z'),
    environment: {
      type: 'LINUX_CONTAINER',
      image: 'x',
      computeType: 'BUILD_GENERAL1_SMALL',
      environmentVariables: mode === undefined ? [] : [{ name: START_ENV.MODE, value: mode, type: type as 'PLAINTEXT' }],
    },
  };
}

function instance(status: string): DBInstance {
  return {
    DBInstanceIdentifier: DRILL_INSTANCE,
    DBInstanceStatus: status,
    TagList: [{ Key: TAGS.BUILD_ID, Value: DRILL }, { Key: TAGS.SOURCE, Value: SOURCE }],
  };
}

/** CodeBuild and RDS as seen at each look: the builds by id, and the instances. */
function world(builds: Map<string, Build>, instances: () => DBInstance[]): void {
  codebuildMock.on(ListBuildsForProjectCommand).resolves({ ids: [...builds.keys()] });
  codebuildMock.on(BatchGetBuildsCommand).callsFake((input: { ids: string[] }) => ({
    builds: input.ids.flatMap((id) => (builds.has(id) ? [builds.get(id)!] : [])),
  }));
  rdsMock.on(DescribeDBInstancesCommand).callsFake(() => ({ DBInstances: instances() }));
}

function deps(log = recordingLog()): TriggerDeps {
  return { config: config(), rds: new RDSClient({ region: REGION }), codebuild: new CodeBuildClient({ region: REGION }), log: log.log };
}

/** A clock the waits move forward. */
function fakeTime(): { now: () => number; sleep: (ms: number) => Promise<void> } {
  let t = Date.parse('2026-11-24T10:00:00Z');
  return { now: () => t, sleep: async (ms) => void (t += ms) };
}

beforeEach(() => {
  codebuildMock.reset();
  rdsMock.reset();
});

test('a running drill is stopped, waited for until it ended and its temporary instance is deleting, then the recovery may start', async () => {
  const builds = new Map([[DRILL, build(DRILL, 'drill', 'IN_PROGRESS')], [OLD, build(OLD, undefined, 'SUCCEEDED')]]);
  let looks = 0;
  world(builds, () => [instance(looks >= 2 ? 'deleting' : 'available')]);
  codebuildMock.on(StopBuildCommand).callsFake(() => {
    // CodeBuild ends the build a little later; the runner's cleanup deletes the temporary instance on the way out.
    builds.set(DRILL, build(DRILL, 'drill', 'STOPPED'));
    return { build: builds.get(DRILL) };
  });
  rdsMock.on(DescribeDBInstancesCommand).callsFake(() => ({ DBInstances: [instance(looks++ >= 2 ? 'deleting' : 'available')] }));
  const log = recordingLog();
  const time = fakeTime();

  const stopped = await stopRunningDrills(deps(log), { deadline: time.now() + 40_000, pollMs: 5_000, ...time });

  expect(stopped).toEqual([DRILL]);
  expect(codebuildMock.commandCalls(StopBuildCommand).map((c) => c.args[0].input)).toEqual([{ id: DRILL }]);
  expect(codebuildMock.commandCalls(ListBuildsForProjectCommand)[0].args[0].input).toEqual({ projectName: PROJECT, sortOrder: 'DESCENDING' });
  expect(log.lines.join('\n')).toContain(`Restore drill build ${DRILL} of "${SOURCE}" was running; stopping it (StopBuild)`);
  expect(log.lines.join('\n')).toContain('stopped and its temporary instance is being deleted (or gone); starting the recovery');
});

test.each([
  ['a recovery (no MODE)', undefined, 'PLAINTEXT', /Recovery build .* is running .*a running recovery is never stopped.*Nothing was started\.$/],
  ['a recovery (MODE=recover)', 'recover', 'PLAINTEXT', /a running recovery is never stopped/],
  ['a build whose MODE was not passed as PLAINTEXT (never taken for a drill)', 'drill', 'SECRETS_MANAGER', /a running recovery is never stopped/],
  ['housekeeping', 'housekeeping', 'PLAINTEXT', /Housekeeping build .* is running .*Retry once it has ended/],
])('%s is running: refused, nothing stopped', async (_what, mode, type, message) => {
  world(new Map([[RECOVERY, build(RECOVERY, mode, 'IN_PROGRESS', type)]]), () => []);
  const time = fakeTime();
  const refusal = stopRunningDrills(deps(), { deadline: time.now() + 40_000, ...time });
  await expect(refusal).rejects.toThrow(ProjectBusyError);
  await expect(refusal).rejects.toThrow(message);
  expect(codebuildMock.commandCalls(StopBuildCommand)).toEqual([]);
});

test('nothing running: nothing stopped, nothing waited for', async () => {
  world(new Map([[OLD, build(OLD, 'drill', 'SUCCEEDED')]]), () => []);
  const time = fakeTime();
  await expect(stopRunningDrills(deps(), { deadline: time.now(), ...time })).resolves.toEqual([]);
  expect(codebuildMock.commandCalls(StopBuildCommand)).toEqual([]);
  expect(rdsMock.commandCalls(DescribeDBInstancesCommand)).toEqual([]);
});

test('a build of another project in the answer is neither stopped nor counted', async () => {
  const foreign = { ...build('BillingDr:x', 'drill', 'IN_PROGRESS'), projectName: 'BillingDr' };
  codebuildMock.on(ListBuildsForProjectCommand).resolves({ ids: ['BillingDr:x'] });
  codebuildMock.on(BatchGetBuildsCommand).resolves({ builds: [foreign] });
  const time = fakeTime();
  await expect(stopRunningDrills(deps(), { deadline: time.now(), ...time })).resolves.toEqual([]);
  expect(codebuildMock.commandCalls(StopBuildCommand)).toEqual([]);
});

test('the drill\'s temporary instance is still being created at the deadline: the answer says it is being stopped and when to retry', async () => {
  const builds = new Map([[DRILL, build(DRILL, 'drill', 'IN_PROGRESS')]]);
  world(builds, () => [instance('creating')]);
  codebuildMock.on(StopBuildCommand).callsFake(() => {
    builds.set(DRILL, build(DRILL, 'drill', 'STOPPED'));
    return {};
  });
  const log = recordingLog();
  const time = fakeTime();
  const start = time.now();

  const refusal = stopRunningDrills(deps(log), { deadline: start + 40_000, pollMs: 5_000, ...time });

  await expect(refusal).rejects.toThrow(new RegExp(`A restore drill of "${SOURCE}" was running \\(build ${DRILL}\\) and is being stopped so that this recovery can run, but it is not out of the way yet: `
    + `its temporary instance ${DRILL_INSTANCE} is creating\\. RDS deletes a temporary instance only once it has been created.*Retry the same request in ${RETRY_AFTER_CREATING_MINUTES} minutes\\. `
    + 'The recovery was not started, and nothing on the original was changed\\.$'));
  expect(codebuildMock.commandCalls(StopBuildCommand)).toHaveLength(1);
  // It waited until the deadline, no longer.
  expect(time.now() - start).toBeLessThanOrEqual(40_000);
  expect(time.now() - start).toBeGreaterThanOrEqual(35_000);
  expect(log.lines.at(-1)).toContain('Retry the same request in');
});

test('modeOfBuild reads MODE as CodeBuild reports it', () => {
  expect(modeOfBuild(build(DRILL, 'drill', 'IN_PROGRESS'))).toBe('drill');
  expect(modeOfBuild(build(DRILL, ' drill ', 'IN_PROGRESS'))).toBe('drill');
  expect(modeOfBuild(build(DRILL, undefined, 'IN_PROGRESS'))).toBe('recover');
  expect(modeOfBuild(build(DRILL, '', 'IN_PROGRESS'))).toBe('recover');
  expect(modeOfBuild(build(DRILL, 'drill', 'IN_PROGRESS', 'PARAMETER_STORE'))).toBeUndefined();
});
