/**
 * Direct invocation of the trigger: request validation, the restore-window
 * check and StartBuild. RDS is moto_server; CodeBuild and the restore window
 * moto does not model (RestoreWindow.EarliestTime) come from aws-sdk-client-mock.
 */
import { CodeBuildClient, StartBuildCommand } from '@aws-sdk/client-codebuild';
import {
  DescribeDBInstanceAutomatedBackupsCommand,
  DescribeDBInstancesCommand,
  RDSClient,
  StopDBInstanceCommand,
} from '@aws-sdk/client-rds';
import { AwsStub, mockClient } from 'aws-sdk-client-mock';
import { DUMMY_AWS_ENV, MotoServer, motoClientConfig, startMoto } from './moto';
import { ACCOUNT, PROJECT, REGION, SOURCE, config, createPostgres, recordingLog } from './trigger-fixtures';
import { startRecovery } from '../lambda/start-recovery';
import { TriggerDeps } from '../lambda/trigger-deps';
import {
  DATABASE_NAME_ACCEPTED,
  RECOVERY_REQUEST_FIELDS,
  RESTORE_TIME_ACCEPTED,
  START_ENV,
  STRATEGIES,
  quoteValue,
  type DrillStarted,
  type HousekeepingStarted,
  type RecoveryStarted,
} from '../src/contract';

Object.assign(process.env, DUMMY_AWS_ENV);

const DAY = 24 * 60 * 60 * 1000;
const BUILD_ID = `${PROJECT}:6f1c2a7e-0000-4000-8000-000000000001`;
const NO_BACKUPS = 'no-backups-db';
const STOPPED = 'stopped-db';

let moto: MotoServer;
/** Talks to moto directly: setup, and moto's own answers inside fakes. */
let motoRds: RDSClient;
/** The client the code under test uses: moto, plus the restore window moto lacks. */
let rds: RDSClient;
let rdsMock: AwsStub<any, any, any>;
let codebuild: CodeBuildClient;
let codebuildMock: AwsStub<any, any, any>;
let earliest: Date;

beforeAll(async () => {
  moto = await startMoto();
  motoRds = new RDSClient(motoClientConfig(moto.endpoint));
  await createPostgres(motoRds, SOURCE, { backupRetentionDays: 7 });
  await createPostgres(motoRds, NO_BACKUPS, { backupRetentionDays: 0 });
  await createPostgres(motoRds, STOPPED, { backupRetentionDays: 7 });
  await motoRds.send(new StopDBInstanceCommand({ DBInstanceIdentifier: STOPPED }));
});

afterAll(async () => {
  await moto?.stop();
});

beforeEach(() => {
  earliest = new Date(Date.now() - 7 * DAY);
  rds = new RDSClient(motoClientConfig(moto.endpoint));
  rdsMock = mockClient(rds);
  rdsMock.send.callThrough();
  // moto lists the instance's automated backups but without RestoreWindow; add it.
  rdsMock.on(DescribeDBInstanceAutomatedBackupsCommand).callsFake(async (input) => {
    const real = await motoRds.send(new DescribeDBInstanceAutomatedBackupsCommand(input));
    return {
      ...real,
      DBInstanceAutomatedBackups: real.DBInstanceAutomatedBackups?.map((b) => ({
        ...b,
        RestoreWindow: { EarliestTime: earliest, LatestTime: new Date() },
      })),
    };
  });
  codebuild = new CodeBuildClient(motoClientConfig('http://127.0.0.1:9'));
  codebuildMock = mockClient(codebuild);
  codebuildMock.on(StartBuildCommand).resolves({
    build: {
      id: BUILD_ID,
      arn: `arn:aws:codebuild:${REGION}:${ACCOUNT}:build/${BUILD_ID}`,
      projectName: PROJECT,
      // What CodeBuild answers before the log stream exists.
      logs: { deepLink: `https://console.aws.amazon.com/cloudwatch/home?region=${REGION}#logEvent:group=null;stream=null` },
    },
  });
});

function deps(overrides: Partial<TriggerDeps> = {}): TriggerDeps {
  return { config: config(), rds, codebuild, log: recordingLog().log, ...overrides };
}

function startBuildCalls() {
  return codebuildMock.commandCalls(StartBuildCommand);
}

/** Expects rejection with every fragment in the message, and no build started. */
async function expectRejected(input: unknown, fragments: string[], extra: Partial<TriggerDeps> = {}): Promise<string> {
  const error: Error = await startRecovery(input, deps(extra)).then(
    () => { throw new Error(`expected ${JSON.stringify(input)} to be rejected`); },
    (err: Error) => err,
  );
  for (const fragment of fragments) expect(error.message).toContain(fragment);
  expect(startBuildCalls()).toHaveLength(0);
  return error.message;
}

const insideWindow = () => new Date(Date.now() - DAY).toISOString();

describe('request validation (nothing is looked up or started)', () => {
  afterEach(() => {
    // Pure validation failures must not even reach RDS.
    expect(rdsMock.calls()).toHaveLength(0);
  });

  test('missing confirm names the field and the id to pass', async () => {
    const message = await expectRejected({ restoreTime: 'latest' }, ['confirm: missing', `exactly "${SOURCE}"`, 'Nothing was started.']);
    expect(message).not.toContain('restoreTime');
  });

  test('wrong confirm names the value given and the id to pass', async () => {
    await expectRejected({ restoreTime: 'latest', confirm: 'orders-db-replica' }, [
      'confirm: "orders-db-replica" does not match the source instance',
      `exactly "${SOURCE}"`,
    ]);
  });

  test('confirm differing only in case is rejected', async () => {
    await expectRejected({ restoreTime: 'latest', confirm: SOURCE.toUpperCase() }, [`confirm: "${SOURCE.toUpperCase()}"`, `exactly "${SOURCE}"`]);
  });

  test('missing restoreTime', async () => {
    await expectRejected({ confirm: SOURCE }, ['restoreTime: missing', RESTORE_TIME_ACCEPTED]);
  });

  test.each([
    ['no Z (local time)', '2026-11-24T09:30:00'],
    ['local offset', '2026-11-24T09:30:00+02:00'],
    ['no seconds', '2026-11-24T09:30Z'],
    ['space instead of T', '2026-11-24 09:30:00Z'],
    ['31 February', '2026-02-31T00:00:00Z'],
    ['hour 24', '2026-11-24T24:00:00Z'],
    ['date only', '2026-11-24'],
    ['LATEST in capitals', 'LATEST'],
    ['empty string', ''],
    ['epoch seconds', 1795512600],
  ])('malformed restoreTime: %s', async (_, value) => {
    await expectRejected({ restoreTime: value, confirm: SOURCE }, [`restoreTime: ${quoteValue(value)}`, RESTORE_TIME_ACCEPTED]);
  });

  test('unknown field names the field, its value and the accepted fields', async () => {
    await expectRejected({ restoreTime: 'latest', confirm: SOURCE, dryRun: true }, [
      'dryRun: unknown field (value true)',
      `accepted fields: ${RECOVERY_REQUEST_FIELDS.join(', ')}`,
    ]);
  });

  test.each([
    ['empty name', [''], 'databases[0]: ""'],
    ['64 bytes', ['x'.repeat(64)], `databases[0]: "${'x'.repeat(16)}…" (64 characters)`],
    ['64 bytes of UTF-8 in 32 characters', ['é'.repeat(32)], 'databases[0]: "…" (32 characters)'],
    ['template1', ['app', 'template1'], 'databases[1]: "template1"'],
    ['template0', ['template0'], 'databases[0]: "template0"'],
    ['rdsadmin', ['rdsadmin'], 'databases[0]: "rdsadmin"'],
    ['control character', ['app\nx'], 'databases[0]: "app…" (5 characters)'],
    ['not a string', [42], 'databases[0]: a number'],
  ])('bad database name: %s', async (_, databases, named) => {
    await expectRejected({ restoreTime: 'latest', confirm: SOURCE, databases }, [named, DATABASE_NAME_ACCEPTED]);
  });

  test.each([
    ['a comma inside a name', ['a,b'], 'databases[0]: "a,b" cannot be passed'],
    ['leading space', [' app'], 'databases[0]: " app" cannot be passed'],
    ['a name twice', ['app', 'app'], 'databases[1]: "app" is listed twice'],
  ])('database names the build could not receive intact: %s', async (_, databases, named) => {
    await expectRejected({ restoreTime: 'latest', confirm: SOURCE, databases }, [named, 'accepted:']);
  });

  test.each([
    ['a string', 'app'],
    ['an empty list', []],
    ['an object', { name: 'app' }],
  ])('databases that is not a non-empty list: %s', async (_, databases) => {
    await expectRejected({ restoreTime: 'latest', confirm: SOURCE, databases }, [
      `databases: ${JSON.stringify(databases)}`,
      'non-empty JSON array of database names',
      'leave databases out to recover every non-template database',
    ]);
  });

  test.each([['SWAP'], ['delete'], [1], [null]])('bad strategy %p', async (strategy) => {
    await expectRejected({ restoreTime: 'latest', confirm: SOURCE, strategy }, [
      `strategy: ${quoteValue(strategy)} is not a strategy`,
      STRATEGIES.join(' | '),
    ]);
  });

  test.each([
    ['null', null],
    ['a string', 'latest'],
    ['a number', 42],
    ['an array', [{ restoreTime: 'latest', confirm: SOURCE }]],
    ['undefined', undefined],
  ])('non-object input: %s', async (_, input) => {
    await expectRejected(input, [
      `request: ${input === undefined ? 'undefined' : JSON.stringify(input)} is not a recovery request`,
      'accepted: a JSON object {"restoreTime"',
    ]);
  });

  test('every problem is reported in one message', async () => {
    const message = await expectRejected(
      { restoreTime: '2026-11-24T09:30:00', confirm: 'prod', databases: ['template1'], strategy: 'fast', mode: 'x' },
      ['mode: "x" is not a mode', 'restoreTime: "2026-11-24T09:30…" (19 characters)', 'confirm: "prod"', 'databases[0]: "template1"', 'strategy: "fast"'],
    );
    expect(message.endsWith('Nothing was started.')).toBe(true);
  });

  test('a very long value is shortened in the message', async () => {
    const message = await expectRejected({ restoreTime: 'latest', confirm: SOURCE, note: 'n'.repeat(10_000) }, ['note: unknown field', '(10002 characters)']);
    expect(message.length).toBeLessThan(600);
  });
});

describe('the restorable window', () => {
  test('a time before the earliest restorable time is rejected with the window', async () => {
    const tooEarly = new Date(earliest.getTime() - DAY);
    const message = await expectRejected({ restoreTime: tooEarly.toISOString(), confirm: SOURCE }, [
      `restoreTime: ${tooEarly.toISOString()} is before the earliest restorable time`,
      `accepted: a time from ${earliest.toISOString()} to `,
      'Nothing was created.',
    ]);
    expect(message).toContain('"latest"');
    expect(rdsMock.commandCalls(DescribeDBInstanceAutomatedBackupsCommand)[0].args[0].input).toEqual({ DBInstanceIdentifier: SOURCE });
  });

  test('a time after the latest restorable time (moto: now) is rejected with the window', async () => {
    const future = new Date(Date.now() + 60 * 60 * 1000).toISOString();
    await expectRejected({ restoreTime: future, confirm: SOURCE }, [
      `restoreTime: ${future} is after the latest restorable time`,
      `accepted: a time from ${earliest.toISOString()} to `,
    ]);
  });

  test('an instance whose backups report no restore window yet accepts only latest', async () => {
    // Without the mock, moto's answer has no RestoreWindow, as on a brand-new instance.
    await expectRejected({ restoreTime: insideWindow(), confirm: SOURCE }, ['no automated backup with a restore window', 'restoreTime "latest"'], { rds: motoRds });
  });

  test('backups retained from an earlier instance of the same name do not widen the window', async () => {
    const current = (await motoRds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: SOURCE }))).DBInstances![0];
    rdsMock.on(DescribeDBInstanceAutomatedBackupsCommand).resolves({
      DBInstanceAutomatedBackups: [
        { DBInstanceIdentifier: SOURCE, Status: 'retained', DbiResourceId: 'db-OLD', RestoreWindow: { EarliestTime: new Date(Date.now() - 30 * DAY) } },
        { DBInstanceIdentifier: SOURCE, Status: 'active', DbiResourceId: current.DbiResourceId, RestoreWindow: { EarliestTime: earliest } },
      ],
    });
    const old = new Date(Date.now() - 20 * DAY).toISOString();
    await expectRejected({ restoreTime: old, confirm: SOURCE }, [`restoreTime: ${old} is before the earliest restorable time`]);
  });
});

describe('the source instance', () => {
  test('latest is refused when automated backups are turned off', async () => {
    await expectRejected({ restoreTime: 'latest', confirm: NO_BACKUPS }, [
      `Source instance "${NO_BACKUPS}" has automated backups turned off (BackupRetentionPeriod 0)`,
      'at least 1 day',
      'Nothing was started.',
    ], { config: config({ sourceId: NO_BACKUPS }) });
  });

  test('a stopped source is refused', async () => {
    await expectRejected({ restoreTime: 'latest', confirm: STOPPED }, [`Source instance "${STOPPED}" is "stopped", not "available"`, 'Nothing was started.'], {
      config: config({ sourceId: STOPPED }),
    });
  });

  test('a source that does not exist is refused', async () => {
    await expectRejected({ restoreTime: 'latest', confirm: 'gone-db' }, ['SOURCE_INSTANCE_ID: RDS instance "gone-db" was not found in us-east-1', 'Nothing was started.'], {
      config: config({ sourceId: 'gone-db' }),
    });
  });
});

describe('starting the build', () => {
  test('an explicit time inside the window starts the build with exactly these overrides', async () => {
    const when = new Date(Date.now() - DAY);
    const log = recordingLog();
    const started = await startRecovery(
      { restoreTime: when.toISOString(), confirm: SOURCE, databases: ['app', 'reporting'], strategy: 'replace' },
      deps({ log: log.log }),
    );

    expect(startBuildCalls()).toHaveLength(1);
    expect(startBuildCalls()[0].args[0].input).toEqual({
      projectName: PROJECT,
      environmentVariablesOverride: [
        { name: START_ENV.RESTORE_TIME, value: when.toISOString(), type: 'PLAINTEXT' },
        { name: START_ENV.CONFIRM, value: SOURCE, type: 'PLAINTEXT' },
        { name: START_ENV.DATABASES, value: 'app,reporting', type: 'PLAINTEXT' },
        { name: START_ENV.STRATEGY, value: 'replace', type: 'PLAINTEXT' },
      ],
    });
    expect(started).toEqual({
      buildId: BUILD_ID,
      restoreTime: when.toISOString(),
      logsUrl: `https://${REGION}.console.aws.amazon.com/codesuite/codebuild/projects/${PROJECT}/build/${encodeURIComponent(BUILD_ID)}/log?region=${REGION}`,
    });
    expect(log.lines.join('\n')).toContain(`Started recovery build ${BUILD_ID} of "${SOURCE}" to ${when.toISOString()} (strategy replace, databases app,reporting)`);
  });

  test('the restore time is passed on normalised to the instant that was checked', async () => {
    const when = new Date(Date.now() - DAY);
    when.setUTCMilliseconds(0);
    const typed = when.toISOString().replace('.000Z', 'Z');
    const started = await startRecovery({ restoreTime: typed, confirm: SOURCE }, deps());
    const overrides = startBuildCalls()[0].args[0].input.environmentVariablesOverride;
    expect(overrides?.[0]).toEqual({ name: START_ENV.RESTORE_TIME, value: when.toISOString(), type: 'PLAINTEXT' });
    expect((started as RecoveryStarted).restoreTime).toBe(when.toISOString());
  });

  test('latest skips the window lookup and starts with the default strategy and no database override', async () => {
    const started = await startRecovery({ restoreTime: 'latest', confirm: SOURCE }, deps());

    expect(rdsMock.commandCalls(DescribeDBInstanceAutomatedBackupsCommand)).toHaveLength(0);
    expect(rdsMock.commandCalls(DescribeDBInstancesCommand)).toHaveLength(1);
    expect(startBuildCalls()[0].args[0].input).toEqual({
      projectName: PROJECT,
      environmentVariablesOverride: [
        { name: START_ENV.RESTORE_TIME, value: 'latest', type: 'PLAINTEXT' },
        { name: START_ENV.CONFIRM, value: SOURCE, type: 'PLAINTEXT' },
        { name: START_ENV.STRATEGY, value: 'swap', type: 'PLAINTEXT' },
      ],
    });
    expect(started.buildId).toBe(BUILD_ID);
    expect((started as RecoveryStarted).restoreTime).toBe('latest');
  });

  test('a 63-byte database name, the longest PostgreSQL allows, is passed on', async () => {
    const longest = 'é'.repeat(31) + 'x';
    await startRecovery({ restoreTime: 'latest', confirm: SOURCE, databases: [longest, 'app'] }, deps());
    const overrides = startBuildCalls()[0].args[0].input.environmentVariablesOverride;
    expect(overrides).toContainEqual({ name: START_ENV.DATABASES, value: `${longest},app`, type: 'PLAINTEXT' });
  });

  test('a usable CloudWatch deep link from StartBuild is returned as the logs URL', async () => {
    const deepLink = `https://console.aws.amazon.com/cloudwatch/home?region=${REGION}#logEvent:group=/aws/codebuild/${PROJECT};stream=6f1c2a7e`;
    codebuildMock.on(StartBuildCommand).resolves({ build: { id: BUILD_ID, logs: { deepLink } } });
    const started = await startRecovery({ restoreTime: 'latest', confirm: SOURCE }, deps());
    expect(started.logsUrl).toBe(deepLink);
  });

  test('a StartBuild failure says the recovery was not started', async () => {
    codebuildMock.on(StartBuildCommand).rejects(Object.assign(new Error('Project cannot have more than 1 builds running'), { name: 'AccountLimitExceededException' }));
    await expect(startRecovery({ restoreTime: 'latest', confirm: SOURCE }, deps())).rejects.toThrow(
      `StartBuild on CodeBuild project "${PROJECT}" failed (AccountLimitExceededException: Project cannot have more than 1 builds running). The recovery was not started.`,
    );
  });
});

describe('housekeeping requests (mode: "housekeeping")', () => {
  test('a dry run needs no confirm and starts a build with MODE, OLDER_THAN and DRY_RUN only; no restore window is looked up', async () => {
    const started = await startRecovery({ mode: 'housekeeping', olderThan: '7d', dryRun: true }, deps()) as HousekeepingStarted;
    expect(startBuildCalls()[0].args[0].input).toEqual({
      projectName: PROJECT,
      environmentVariablesOverride: [
        { name: START_ENV.MODE, value: 'housekeeping', type: 'PLAINTEXT' },
        { name: START_ENV.OLDER_THAN, value: '7d', type: 'PLAINTEXT' },
        { name: START_ENV.DRY_RUN, value: 'true', type: 'PLAINTEXT' },
      ],
    });
    expect(started).toMatchObject({ buildId: BUILD_ID, mode: 'housekeeping', olderThan: '7d', dryRun: true });
    expect(rdsMock.commandCalls(DescribeDBInstanceAutomatedBackupsCommand)).toHaveLength(0);
  });

  test('dropping needs confirm equal to the source; it is passed on', async () => {
    await startRecovery({ mode: 'housekeeping', olderThan: '36h', confirm: SOURCE }, deps());
    expect(startBuildCalls()[0].args[0].input.environmentVariablesOverride).toContainEqual({ name: START_ENV.CONFIRM, value: SOURCE, type: 'PLAINTEXT' });
    expect(startBuildCalls()[0].args[0].input.environmentVariablesOverride).toContainEqual({ name: START_ENV.DRY_RUN, value: 'false', type: 'PLAINTEXT' });
  });

  test.each([
    [{ mode: 'housekeeping', olderThan: '7d' }, /confirm: missing; accepted: exactly "orders-db"/],
    [{ mode: 'housekeeping', olderThan: '7d', confirm: 'other-db' }, /confirm: "other-db" does not match the source instance/],
    [{ mode: 'housekeeping', olderThan: 'a week', dryRun: true }, /olderThan: "a…" \(6 characters\) is not an age; accepted: a whole number of days or hours such as 7d or 36h/],
    [{ mode: 'housekeeping', olderThan: '7d', dryRun: 'yes' }, /dryRun: "yes" is not accepted; accepted: true or false/],
    [{ mode: 'housekeeping', olderThan: '7d', dryRun: true, restoreTime: 'latest' }, /restoreTime: unknown field for housekeeping .*accepted fields: mode, olderThan, dryRun, confirm/],
    [{ mode: 'recovery', restoreTime: 'latest', confirm: 'orders-db' }, /mode: "recovery" is not a mode; accepted: recover \| housekeeping \| drill \(default recover\)/],
    [{ mode: 'RECOVER', restoreTime: 'latest', confirm: 'orders-db' }, /mode: "RECOVER" is not a mode; accepted: recover/],
  ])('%j is refused, naming the field, and nothing is started', async (request, message) => {
    await expect(startRecovery(request, deps())).rejects.toThrow(message);
    await expect(startRecovery(request, deps())).rejects.toThrow(/Nothing was started\.$/);
    expect(startBuildCalls()).toHaveLength(0);
  });
});


describe('recovery requests with mode: "recover" (the documented default, spelled out)', () => {
  test('is a recovery request: the build gets the same variables as without mode', async () => {
    const time = insideWindow();
    await startRecovery({ restoreTime: time, confirm: SOURCE, databases: ['orders'] }, deps());
    await startRecovery({ mode: 'recover', restoreTime: time, confirm: SOURCE, databases: ['orders'] }, deps());
    const [without, withMode] = startBuildCalls().map((c) => c.args[0].input.environmentVariablesOverride);
    expect(withMode).toEqual(without);
    expect(withMode).toContainEqual({ name: START_ENV.CONFIRM, value: SOURCE, type: 'PLAINTEXT' });
  });

  test('still needs confirm, as any recovery', async () => {
    await expectRejected({ mode: 'recover', restoreTime: 'latest' }, ['confirm: missing']);
  });
});

describe('drill requests (mode: "drill")', () => {
  test('no confirm: a build with MODE=drill and the restore time (latest by default); no restore window is looked up', async () => {
    const started = await startRecovery({ mode: 'drill' }, deps()) as DrillStarted;
    expect(startBuildCalls()[0].args[0].input).toEqual({
      projectName: PROJECT,
      environmentVariablesOverride: [
        { name: START_ENV.MODE, value: 'drill', type: 'PLAINTEXT' },
        { name: START_ENV.RESTORE_TIME, value: 'latest', type: 'PLAINTEXT' },
      ],
    });
    expect(started).toMatchObject({ buildId: BUILD_ID, mode: 'drill', restoreTime: 'latest' });
    expect(rdsMock.commandCalls(DescribeDBInstanceAutomatedBackupsCommand)).toHaveLength(0);
  });

  test('random within the last days, and a list of databases, are passed on', async () => {
    await startRecovery({ mode: 'drill', restoreTime: 'random:7d', databases: ['app', 'reporting'] }, deps());
    expect(startBuildCalls()[0].args[0].input.environmentVariablesOverride).toEqual([
      { name: START_ENV.MODE, value: 'drill', type: 'PLAINTEXT' },
      { name: START_ENV.RESTORE_TIME, value: 'random:7d', type: 'PLAINTEXT' },
      { name: START_ENV.DATABASES, value: 'app,reporting', type: 'PLAINTEXT' },
    ]);
  });

  test.each([
    [{ mode: 'drill', restoreTime: 'sometime' }, /restoreTime: "sometime" is not a drill restore time; accepted: .*"random:<age>"/],
    [{ mode: 'drill', databases: [] }, /databases: \[\] is empty/],
    [{ mode: 'drill', confirm: SOURCE }, /confirm: unknown field for a drill .*accepted fields: mode, restoreTime, databases/],
  ])('%j is refused, naming the field, and nothing is started', async (request, message) => {
    await expect(startRecovery(request, deps())).rejects.toThrow(message);
    await expect(startRecovery(request, deps())).rejects.toThrow(/Nothing was started\.$/);
    expect(startBuildCalls()).toHaveLength(0);
  });
});
