/**
 * EventBridge invocation of the trigger: after a dead recovery build, delete
 * exactly the temporary instances tagged with that build's id. All RDS calls
 * go to moto_server.
 */
import {
  DeleteDBInstanceCommand,
  DescribeDBInstancesCommand,
  ListTagsForResourceCommand,
  RDSClient,
} from '@aws-sdk/client-rds';
import { mockClient } from 'aws-sdk-client-mock';
import { DUMMY_AWS_ENV, MotoServer, motoClientConfig, startMoto } from './moto';
import { PROJECT, SOURCE, buildArn, config, createPostgres, instanceStates, recordingLog } from './trigger-fixtures';
import { BuildStateChangeEvent, cleanupAfterDeadBuild } from '../lambda/cleanup';
import { TriggerDeps } from '../lambda/trigger-deps';
import { BUILD_STATE_CHANGE, temporaryInstanceId } from '../src/contract';

Object.assign(process.env, DUMMY_AWS_ENV);

const DEAD_BUILD = `${PROJECT}:0d1e2a3d-0000-4000-8000-00000000dead`;
const OTHER_BUILD = `${PROJECT}:0a1b2c3d-0000-4000-8000-0000000a11ve`;

const DEAD_TEMP_1 = temporaryInstanceId(SOURCE, '20261124010101');
const DEAD_TEMP_2 = temporaryInstanceId(SOURCE, '20261124020202');
const OTHER_BUILD_TEMP = temporaryInstanceId(SOURCE, '20261124030303');
const UNTAGGED_TEMP = temporaryInstanceId(SOURCE, '20261124040404');
/** Tagged with the dead build but not named like a temporary instance of the source. */
const LOOKALIKE = 'reporting-db';

let moto: MotoServer;
let rds: RDSClient;

beforeAll(async () => {
  moto = await startMoto();
  rds = new RDSClient(motoClientConfig(moto.endpoint));
});

afterAll(async () => {
  await moto?.stop();
});

beforeEach(async () => {
  await moto.reset();
  // The source carries the dead build's tag too: the name guard must still protect it.
  await createPostgres(rds, SOURCE, { buildIdTag: DEAD_BUILD });
  await createPostgres(rds, DEAD_TEMP_1, { buildIdTag: DEAD_BUILD });
  await createPostgres(rds, DEAD_TEMP_2, { buildIdTag: DEAD_BUILD });
  await createPostgres(rds, OTHER_BUILD_TEMP, { buildIdTag: OTHER_BUILD });
  await createPostgres(rds, UNTAGGED_TEMP);
  await createPostgres(rds, LOOKALIKE, { buildIdTag: DEAD_BUILD });
});

function deps(overrides: Partial<TriggerDeps> = {}): TriggerDeps {
  return { config: config(), rds, codebuild: undefined as never, log: recordingLog().log, ...overrides };
}

function stateChange(detail: BuildStateChangeEvent['detail'], envelope: Partial<BuildStateChangeEvent> = {}): BuildStateChangeEvent {
  return { 'source': BUILD_STATE_CHANGE.SOURCE, 'detail-type': BUILD_STATE_CHANGE.DETAIL_TYPE, detail, ...envelope };
}

function deadBuild(status: string = 'FAILED', buildId: string = DEAD_BUILD): BuildStateChangeEvent {
  return stateChange({ 'build-status': status, 'project-name': PROJECT, 'build-id': buildArn(buildId) });
}

const SURVIVORS = [SOURCE, OTHER_BUILD_TEMP, UNTAGGED_TEMP, LOOKALIKE];

describe.each(['FAILED', 'STOPPED', 'TIMED_OUT'])('after a %s build', (status) => {
  test('deletes exactly the temporary instances tagged with its build id', async () => {
    const log = recordingLog();
    const summary = await cleanupAfterDeadBuild(deadBuild(status), deps({ log: log.log }));

    expect([...summary.deleted].sort()).toEqual([DEAD_TEMP_1, DEAD_TEMP_2]);
    expect(summary.ignored).toBeUndefined();
    const states = await instanceStates(rds);
    // moto removes a deleted instance at once; on AWS it would be "deleting".
    for (const id of [DEAD_TEMP_1, DEAD_TEMP_2]) expect(states[id] ?? 'gone').toMatch(/^(gone|deleting)$/);
    for (const id of SURVIVORS) expect(states[id]).toBe('available');
    expect(log.lines.join('\n')).toContain(`Build ${DEAD_BUILD} ended ${status}`);
    expect(log.lines.join('\n')).toContain(`Deleting ${DEAD_TEMP_1}`);
  });
});

test('deletes without a final snapshot and without keeping automated backups', async () => {
  const spy = mockClient(rds);
  spy.send.callThrough();
  try {
    await cleanupAfterDeadBuild(deadBuild(), deps());
    const deletes = spy.commandCalls(DeleteDBInstanceCommand).map((c) => c.args[0].input);
    expect(deletes.sort((a, b) => a.DBInstanceIdentifier!.localeCompare(b.DBInstanceIdentifier!))).toEqual([
      { DBInstanceIdentifier: DEAD_TEMP_1, SkipFinalSnapshot: true, DeleteAutomatedBackups: true },
      { DBInstanceIdentifier: DEAD_TEMP_2, SkipFinalSnapshot: true, DeleteAutomatedBackups: true },
    ]);
  } finally {
    spy.restore();
  }
});

test('also matches a tag holding the build ARN rather than the build id', async () => {
  const arnTagged = temporaryInstanceId(SOURCE, '20261124050505');
  await createPostgres(rds, arnTagged, { buildIdTag: buildArn(DEAD_BUILD) });
  const summary = await cleanupAfterDeadBuild(deadBuild(), deps());
  expect([...summary.deleted].sort()).toEqual([DEAD_TEMP_1, DEAD_TEMP_2, arnTagged].sort());
});

test('a dead build that left nothing behind deletes nothing', async () => {
  const summary = await cleanupAfterDeadBuild(deadBuild('FAILED', `${PROJECT}:00000000-0000-4000-8000-000000000000`), deps());
  expect(summary).toEqual({ deleted: [] });
  expect(Object.keys(await instanceStates(rds)).sort()).toEqual([...SURVIVORS, DEAD_TEMP_1, DEAD_TEMP_2].sort());
});

describe('events that are ignored', () => {
  test.each([
    ['a SUCCEEDED build', { 'build-status': 'SUCCEEDED', 'project-name': PROJECT, 'build-id': buildArn(DEAD_BUILD) }, 'build status "SUCCEEDED"'],
    ['an IN_PROGRESS build', { 'build-status': 'IN_PROGRESS', 'project-name': PROJECT, 'build-id': buildArn(DEAD_BUILD) }, 'build status "IN_PROGRESS"'],
    ['another project', { 'build-status': 'FAILED', 'project-name': 'someone-elses-project', 'build-id': buildArn(DEAD_BUILD) }, 'project "someone-elses-project"'],
    ['no build id', { 'build-status': 'FAILED', 'project-name': PROJECT }, 'no build-id'],
  ])('%s', async (_, detail, reason) => {
    const log = recordingLog();
    const summary = await cleanupAfterDeadBuild(stateChange(detail), deps({ log: log.log }));
    expect(summary.deleted).toEqual([]);
    expect(summary.ignored).toContain(reason);
    expect(log.lines.join('\n')).toContain('Nothing was deleted.');
    expect(Object.keys(await instanceStates(rds))).toHaveLength(6);
  });

  test('an event that is not a CodeBuild state change', async () => {
    const event = stateChange({ 'build-status': 'FAILED', 'project-name': PROJECT, 'build-id': buildArn(DEAD_BUILD) }, { 'detail-type': 'CodeBuild Build Phase Change' });
    const summary = await cleanupAfterDeadBuild(event, deps());
    expect(summary.ignored).toContain('is not a CodeBuild build state change');
    expect(Object.keys(await instanceStates(rds))).toHaveLength(6);
  });
});

test('finds tagged instances on every DescribeDBInstances page', async () => {
  const many = Array.from({ length: 23 }, (_, i) => temporaryInstanceId(SOURCE, `202611241100${String(i).padStart(2, '0')}`));
  for (const id of many) await createPostgres(rds, id, { buildIdTag: DEAD_BUILD });
  const spy = mockClient(rds);
  spy.send.callThrough();
  try {
    const summary = await cleanupAfterDeadBuild(deadBuild(), deps(), { pageSize: 20 });
    expect(spy.commandCalls(DescribeDBInstancesCommand).length).toBeGreaterThan(1);
    expect([...summary.deleted].sort()).toEqual([DEAD_TEMP_1, DEAD_TEMP_2, ...many].sort());
  } finally {
    spy.restore();
  }
  const states = await instanceStates(rds);
  expect(Object.keys(states).sort()).toEqual([...SURVIVORS].sort());
});

test('falls back to ListTagsForResource when DescribeDBInstances returns no TagList', async () => {
  const spy = mockClient(rds);
  spy.send.callThrough();
  const plain = new RDSClient(motoClientConfig(moto.endpoint));
  spy.on(DescribeDBInstancesCommand).callsFake(async (input) => {
    const real = await plain.send(new DescribeDBInstancesCommand(input));
    return { ...real, DBInstances: real.DBInstances?.map(({ TagList: _dropped, ...rest }) => rest) };
  });
  try {
    const summary = await cleanupAfterDeadBuild(deadBuild(), deps());
    expect([...summary.deleted].sort()).toEqual([DEAD_TEMP_1, DEAD_TEMP_2]);
    // Only instances named like temporary instances are worth a tag lookup.
    const looked = spy.commandCalls(ListTagsForResourceCommand).map((c) => c.args[0].input.ResourceName as string);
    expect(looked.map((arn) => arn.split(':db:')[1]).sort()).toEqual([DEAD_TEMP_1, DEAD_TEMP_2, OTHER_BUILD_TEMP, UNTAGGED_TEMP]);
  } finally {
    spy.restore();
  }
  expect((await instanceStates(rds))[OTHER_BUILD_TEMP]).toBe('available');
});

test('a failed delete is reported and the other instances are still deleted', async () => {
  const spy = mockClient(rds);
  spy.send.callThrough();
  spy.on(DeleteDBInstanceCommand, { DBInstanceIdentifier: DEAD_TEMP_1 }).rejects(
    Object.assign(new Error('Instance is currently creating'), { name: 'InvalidDBInstanceStateFault' }),
  );
  try {
    await expect(cleanupAfterDeadBuild(deadBuild(), deps())).rejects.toThrow(
      `Cleanup after build ${DEAD_BUILD}: could not delete ${DEAD_TEMP_1} (InvalidDBInstanceStateFault: Instance is currently creating). Deletion requested for: ${DEAD_TEMP_2}.`,
    );
  } finally {
    spy.restore();
  }
  const states = await instanceStates(rds);
  expect(states[DEAD_TEMP_1]).toBe('available');
  expect(states[DEAD_TEMP_2]).toBeUndefined();
});
