/**
 * EventBridge invocation of the trigger: after a dead recovery build, delete
 * exactly the temporary instances tagged with that build's id, and only once
 * CodeBuild confirms the build really ended. All RDS calls go to moto_server;
 * CodeBuild is mocked (moto's CodeBuild timestamps break SDK v3).
 */
import { BatchGetBuildsCommand, Build, CodeBuildClient, StatusType } from '@aws-sdk/client-codebuild';
import {
  DeleteDBInstanceCommand,
  DescribeDBInstancesCommand,
  ListTagsForResourceCommand,
  RDSClient,
} from '@aws-sdk/client-rds';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import { DUMMY_AWS_ENV, MotoServer, motoClientConfig, startMoto } from './moto';
import {
  PROJECT, REGION, SOURCE, batchGetBuildsFrom, buildArn, codeBuildRecord, config, createPostgres, instanceStates, recordingLog,
} from './trigger-fixtures';
import { BuildStateChangeEvent, cleanupAfterDeadBuild, isEventBridgeEvent, isSweepEvent, sweepTemporaryInstances } from '../lambda/cleanup';
import { TriggerDeps } from '../lambda/trigger-deps';
import { BUILD_STATE_CHANGE, CLEANUP_SWEEP, temporaryInstanceId } from '../src/contract';

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
const codebuild = new CodeBuildClient({ region: REGION });
const codebuildMock = mockClient(codebuild);

/** Makes CodeBuild's BatchGetBuilds know exactly these builds. */
function codeBuildKnows(...builds: Build[]): void {
  codebuildMock.on(BatchGetBuildsCommand).callsFake(batchGetBuildsFrom(builds));
}

function batchGetBuildsCalls(): unknown[] {
  return codebuildMock.commandCalls(BatchGetBuildsCommand).map((c) => c.args[0].input);
}

beforeAll(async () => {
  moto = await startMoto();
  rds = new RDSClient(motoClientConfig(moto.endpoint));
});

afterAll(async () => {
  codebuildMock.restore();
  await moto?.stop();
});

beforeEach(async () => {
  codebuildMock.reset();
  codeBuildKnows(codeBuildRecord(DEAD_BUILD, 'FAILED'), codeBuildRecord(OTHER_BUILD, 'IN_PROGRESS'));
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
  return { config: config(), rds, codebuild, log: recordingLog().log, ...overrides };
}

function stateChange(detail: BuildStateChangeEvent['detail'], envelope: Partial<BuildStateChangeEvent> = {}): BuildStateChangeEvent {
  return { 'source': BUILD_STATE_CHANGE.SOURCE, 'detail-type': BUILD_STATE_CHANGE.DETAIL_TYPE, detail, ...envelope };
}

function deadBuild(status: string = 'FAILED', buildId: string = DEAD_BUILD): BuildStateChangeEvent {
  return stateChange({ 'build-status': status, 'project-name': PROJECT, 'build-id': buildArn(buildId) });
}

const SURVIVORS = [SOURCE, OTHER_BUILD_TEMP, UNTAGGED_TEMP, LOOKALIKE];

const ALL_INSTANCES = [...SURVIVORS, DEAD_TEMP_1, DEAD_TEMP_2].sort();

describe.each<StatusType>(['FAILED', 'FAULT', 'STOPPED', 'TIMED_OUT'])('after a %s build', (status) => {
  test('deletes exactly the temporary instances tagged with its build id, once CodeBuild confirms', async () => {
    codeBuildKnows(codeBuildRecord(DEAD_BUILD, status));
    const log = recordingLog();
    const summary = await cleanupAfterDeadBuild(deadBuild(status), deps({ log: log.log }));

    expect([...summary.deleted].sort()).toEqual([DEAD_TEMP_1, DEAD_TEMP_2]);
    expect(summary.ignored).toBeUndefined();
    const states = await instanceStates(rds);
    // moto removes a deleted instance at once; on AWS it would be "deleting".
    for (const id of [DEAD_TEMP_1, DEAD_TEMP_2]) expect(states[id] ?? 'gone').toMatch(/^(gone|deleting)$/);
    for (const id of SURVIVORS) expect(states[id]).toBe('available');
    expect(log.lines.join('\n')).toContain(`Build ${DEAD_BUILD} ended ${status} (confirmed by CodeBuild)`);
    expect(log.lines.join('\n')).toContain(`Deleting ${DEAD_TEMP_1}`);
    expect(batchGetBuildsCalls()).toEqual([{ ids: [DEAD_BUILD] }]);
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
  const cleanBuild = `${PROJECT}:00000000-0000-4000-8000-000000000000`;
  codeBuildKnows(codeBuildRecord(cleanBuild, 'FAILED'));
  const summary = await cleanupAfterDeadBuild(deadBuild('FAILED', cleanBuild), deps());
  expect(summary).toEqual({ deleted: [] });
  expect(Object.keys(await instanceStates(rds)).sort()).toEqual(ALL_INSTANCES);
});

describe('CodeBuild does not confirm a dead build of this project: nothing is deleted', () => {
  async function expectNothingDeleted(event: BuildStateChangeEvent, reason: string): Promise<void> {
    const log = recordingLog();
    const spy = mockClient(rds);
    spy.send.callThrough();
    try {
      const summary = await cleanupAfterDeadBuild(event, deps({ log: log.log }));
      expect(summary.deleted).toEqual([]);
      expect(summary.ignored).toContain(reason);
      expect(spy.commandCalls(DeleteDBInstanceCommand)).toEqual([]);
    } finally {
      spy.restore();
    }
    expect(log.lines.join('\n')).toContain(reason);
    expect(log.lines.join('\n')).toContain('Nothing was deleted.');
    const states = await instanceStates(rds);
    expect(Object.keys(states).sort()).toEqual(ALL_INSTANCES);
    for (const id of ALL_INSTANCES) expect(states[id]).toBe('available');
  }

  test.each([
    ['still IN_PROGRESS', codeBuildRecord(DEAD_BUILD, 'IN_PROGRESS'), `build "${DEAD_BUILD}" is IN_PROGRESS (complete: false)`],
    ['FAILED but not yet complete', codeBuildRecord(DEAD_BUILD, 'FAILED', { buildComplete: false }), `build "${DEAD_BUILD}" is FAILED (complete: false)`],
    ['SUCCEEDED', codeBuildRecord(DEAD_BUILD, 'SUCCEEDED'), `build "${DEAD_BUILD}" is SUCCEEDED (complete: true)`],
  ])('a forged FAILED event for a build CodeBuild says is %s', async (_, record, reason) => {
    codeBuildKnows(record);
    await expectNothingDeleted(deadBuild('FAILED'), reason);
    expect(batchGetBuildsCalls()).toEqual([{ ids: [DEAD_BUILD] }]);
  });

  test('a build CodeBuild does not know, though instances carry its id', async () => {
    codeBuildKnows();
    await expectNothingDeleted(deadBuild('FAILED'), `CodeBuild does not know build "${DEAD_BUILD}"`);
    expect(batchGetBuildsCalls()).toEqual([{ ids: [DEAD_BUILD] }]);
  });

  test('a build whose id names another project is not even looked up', async () => {
    const foreign = 'someone-elses-project:0d1e2a3d-0000-4000-8000-00000000dead';
    codeBuildKnows(codeBuildRecord(foreign, 'FAILED'));
    await expectNothingDeleted(deadBuild('FAILED', foreign), `build id "${foreign}" is not a build of the recovery project "${PROJECT}"`);
    // Its IAM grant covers only this project: asking about another would be denied.
    expect(batchGetBuildsCalls()).toEqual([]);
  });

  test('a build CodeBuild says belongs to another project', async () => {
    codeBuildKnows(codeBuildRecord(DEAD_BUILD, 'FAILED', { projectName: 'someone-elses-project' }));
    await expectNothingDeleted(deadBuild('FAILED'), `belongs to project "someone-elses-project", not the recovery project "${PROJECT}"`);
  });

  test('a BatchGetBuilds failure throws, so the event is retried, and deletes nothing', async () => {
    codebuildMock.on(BatchGetBuildsCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    const spy = mockClient(rds);
    spy.send.callThrough();
    try {
      await expect(cleanupAfterDeadBuild(deadBuild(), deps())).rejects.toThrow(
        `Cleanup after build ${DEAD_BUILD}: could not confirm the build's state with CodeBuild BatchGetBuilds `
        + '(ThrottlingException: Rate exceeded). Nothing was deleted; the event will be retried.',
      );
      expect(spy.commandCalls(DeleteDBInstanceCommand)).toEqual([]);
    } finally {
      spy.restore();
    }
    expect(Object.keys(await instanceStates(rds)).sort()).toEqual(ALL_INSTANCES);
  });
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
    expect(batchGetBuildsCalls()).toEqual([]);
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

describe('deletes RDS refuses', () => {
  const refusal = (): Error => Object.assign(new Error('Instance is currently modifying'), { name: 'InvalidDBInstanceStateFault' });
  let spy: AwsClientStub<RDSClient>;

  /** A clock that only moves when the cleanup sleeps, so waiting costs no test time. */
  function fakeClock(deadlineMs: number) {
    let t = 1_000_000;
    const sleep = jest.fn(async (ms: number) => { t += ms; });
    return { now: () => t, sleep, retryDeadline: t + deadlineMs };
  }

  /** DeleteDBInstance of `id` fails as RDS does for an instance in a transitional state `times` times, then reaches moto. */
  function refuseDeletesOf(id: string, times: number): void {
    const plain = new RDSClient(motoClientConfig(moto.endpoint));
    let refused = 0;
    spy.on(DeleteDBInstanceCommand, { DBInstanceIdentifier: id }).callsFake(async (input) => {
      if (refused < times) {
        refused += 1;
        throw refusal();
      }
      return plain.send(new DeleteDBInstanceCommand(input));
    });
  }

  function deleteCallsFor(id: string): number {
    return spy.commandCalls(DeleteDBInstanceCommand).filter((c) => c.args[0].input.DBInstanceIdentifier === id).length;
  }

  beforeEach(() => {
    spy = mockClient(rds);
    spy.send.callThrough();
  });

  afterEach(() => spy.restore());

  test('a delete refused for a transitional state is retried every 30 s until RDS accepts it', async () => {
    refuseDeletesOf(DEAD_TEMP_1, 2);
    const clock = fakeClock(5 * 60_000);
    const log = recordingLog();
    const summary = await cleanupAfterDeadBuild(deadBuild(), deps({ log: log.log }), clock);

    expect([...summary.deleted].sort()).toEqual([DEAD_TEMP_1, DEAD_TEMP_2]);
    expect(clock.sleep.mock.calls).toEqual([[30_000], [30_000]]);
    expect(deleteCallsFor(DEAD_TEMP_1)).toBe(3);
    expect(deleteCallsFor(DEAD_TEMP_2)).toBe(1);
    const retries = log.lines.filter((l) => l.includes('RDS refused to delete it'));
    expect(retries).toEqual([
      expect.stringMatching(new RegExp(`^${DEAD_TEMP_1} is available; RDS refused to delete it \\(InvalidDBInstanceStateFault\\). Retry 1 in 30 s`)),
      expect.stringMatching(new RegExp(`^${DEAD_TEMP_1} is available; RDS refused to delete it \\(InvalidDBInstanceStateFault\\). Retry 2 in 30 s`)),
    ]);
    const states = await instanceStates(rds);
    expect(states[DEAD_TEMP_1]).toBeUndefined();
    expect(states[DEAD_TEMP_2]).toBeUndefined();
  });

  test('refused until the deadline: throws naming the instance, and the other instances are still deleted', async () => {
    refuseDeletesOf(DEAD_TEMP_1, Number.POSITIVE_INFINITY);
    // Attempts at 0, 30, 60 and 90 s; one at 120 s would be past the deadline.
    const clock = fakeClock(95_000);
    const log = recordingLog();
    const failure = cleanupAfterDeadBuild(deadBuild(), deps({ log: log.log }), clock);

    await expect(failure).rejects.toThrow(
      `Cleanup after build ${DEAD_BUILD}: could not delete ${DEAD_TEMP_1} (InvalidDBInstanceStateFault: Instance is currently modifying; `
      + `status available, still refused after 4 attempt(s)). Deletion requested for: ${DEAD_TEMP_2}. The event will be retried, `
      + 'and the cleanup sweep tries again every 15 minutes until the instance is gone (RDS refuses to delete an instance while it is being created, '
      + 'which lasts as long as the restore); if neither can, delete the remaining instances by hand (aws rds delete-db-instance --db-instance-identifier <id> --skip-final-snapshot --delete-automated-backups).',
    );
    expect(clock.sleep).toHaveBeenCalledTimes(3);
    expect(deleteCallsFor(DEAD_TEMP_1)).toBe(4);
    expect(log.lines.filter((l) => l.startsWith(`${DEAD_TEMP_1} is available; RDS refused`))).toHaveLength(3);
    const states = await instanceStates(rds);
    expect(states[DEAD_TEMP_1]).toBe('available');
    expect(states[DEAD_TEMP_2]).toBeUndefined();
    for (const id of SURVIVORS) expect(states[id]).toBe('available');
  });

  test('without a retry deadline (no Lambda time budget known) a refused delete fails at once', async () => {
    refuseDeletesOf(DEAD_TEMP_1, 1);
    const sleep = jest.fn(async () => undefined);
    await expect(cleanupAfterDeadBuild(deadBuild(), deps(), { sleep })).rejects.toThrow(
      `could not delete ${DEAD_TEMP_1} (InvalidDBInstanceStateFault: Instance is currently modifying; status available, still refused after 1 attempt(s)). `
      + `Deletion requested for: ${DEAD_TEMP_2}.`,
    );
    expect(sleep).not.toHaveBeenCalled();
  });

  test('an instance that started deleting meanwhile is not a failure', async () => {
    refuseDeletesOf(DEAD_TEMP_1, Number.POSITIVE_INFINITY);
    const plain = new RDSClient(motoClientConfig(moto.endpoint));
    spy.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: DEAD_TEMP_1 }).callsFake(async (input) => {
      const real = await plain.send(new DescribeDBInstancesCommand(input));
      return { ...real, DBInstances: real.DBInstances?.map((i) => ({ ...i, DBInstanceStatus: 'deleting' })) };
    });
    const clock = fakeClock(5 * 60_000);
    const log = recordingLog();
    const summary = await cleanupAfterDeadBuild(deadBuild(), deps({ log: log.log }), clock);
    expect(summary.deleted).toEqual([DEAD_TEMP_2]);
    expect(clock.sleep).not.toHaveBeenCalled();
    expect(log.lines).toContain(`${DEAD_TEMP_1} is already being deleted.`);
  });

  test('other errors are not retried: reported, and the other instances are still deleted', async () => {
    spy.on(DeleteDBInstanceCommand, { DBInstanceIdentifier: DEAD_TEMP_1 }).rejects(
      Object.assign(new Error('User is not authorized to perform rds:DeleteDBInstance'), { name: 'AccessDenied' }),
    );
    const clock = fakeClock(5 * 60_000);
    await expect(cleanupAfterDeadBuild(deadBuild(), deps(), clock)).rejects.toThrow(
      `Cleanup after build ${DEAD_BUILD}: could not delete ${DEAD_TEMP_1} (AccessDenied: User is not authorized to perform rds:DeleteDBInstance). `
      + `Deletion requested for: ${DEAD_TEMP_2}. The event will be retried`,
    );
    expect(clock.sleep).not.toHaveBeenCalled();
    expect(deleteCallsFor(DEAD_TEMP_1)).toBe(1);
    const states = await instanceStates(rds);
    expect(states[DEAD_TEMP_1]).toBe('available');
    expect(states[DEAD_TEMP_2]).toBeUndefined();
  });
});

describe('the scheduled sweep', () => {
  test('deletes every temporary instance of a dead build, and nothing of a running build, untagged, the source or a look-alike', async () => {
    const log = recordingLog();
    const summary = await sweepTemporaryInstances(deps({ log: log.log }));

    expect([...summary.deleted].sort()).toEqual([DEAD_TEMP_1, DEAD_TEMP_2]);
    expect(summary.waiting).toEqual([]);
    const states = await instanceStates(rds);
    for (const id of SURVIVORS) expect(states[id]).toBe('available');
    // One question to CodeBuild about every build id found on a temporary instance of this source.
    expect(batchGetBuildsCalls()).toEqual([{ ids: expect.arrayContaining([DEAD_BUILD, OTHER_BUILD]) }]);
    expect(log.lines.join('\n')).toContain(`Sweep: deleting ${DEAD_TEMP_1}, left by build ${DEAD_BUILD} (FAILED)`);
  });

  test('a delete RDS refuses for now is left to the next sweep, named, without throwing', async () => {
    const spy = mockClient(rds);
    spy.send.callThrough();
    spy.on(DeleteDBInstanceCommand, { DBInstanceIdentifier: DEAD_TEMP_1 }).rejects(
      Object.assign(new Error(`Instance ${DEAD_TEMP_1} is currently creating.`), { name: 'InvalidDBInstanceStateFault', $fault: 'client' }),
    );
    const log = recordingLog();
    const summary = await sweepTemporaryInstances(deps({ log: log.log })).finally(() => spy.restore());
    expect(summary).toEqual({ deleted: [DEAD_TEMP_2], waiting: [DEAD_TEMP_1] });
    expect(log.lines.join('\n')).toMatch(new RegExp(`Sweep: ${DEAD_TEMP_1}, left by build ${DEAD_BUILD} \\(FAILED\\), is available; RDS refused to delete it for now .*The next sweep, in 15 minutes, tries again\\.`));
  });

  test('a build CodeBuild does not know or reports succeeded: its instance is left alone', async () => {
    codeBuildKnows(codeBuildRecord(OTHER_BUILD, 'SUCCEEDED'));
    const summary = await sweepTemporaryInstances(deps());
    expect(summary).toEqual({ deleted: [], waiting: [] });
    expect(Object.keys(await instanceStates(rds)).sort()).toEqual(ALL_INSTANCES);
  });

  test('the sweep input is recognised, and is not a build state change', () => {
    expect(isSweepEvent(CLEANUP_SWEEP)).toBe(true);
    expect(isSweepEvent({ restoreTime: 'latest' })).toBe(false);
    expect(isEventBridgeEvent(CLEANUP_SWEEP)).toBe(false);
  });
});
