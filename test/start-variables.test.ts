/**
 * Start variables are read only when CodeBuild reports them PLAINTEXT, and
 * no message quotes a start value whole. CodeBuild is mocked
 * (aws-sdk-client-mock): BatchGetBuilds answers with the build's
 * environment variables and their types, as CodeBuild's Build shape has
 * them.
 */
import { BatchGetBuildsCommand, CodeBuildClient, type EnvironmentVariable } from '@aws-sdk/client-codebuild';
import { mockClient } from 'aws-sdk-client-mock';
import { ACCEPTED_START_VARIABLE_TYPE, assertPlaintextStartVariables, startVariableTypeProblems } from '../buildspec/runner/aws/start-variables';
import { readDrillRequest } from '../buildspec/runner/drill';
import { readHousekeepingRequest } from '../buildspec/runner/housekeeping';
import { readStartRequest } from '../buildspec/runner/plan';
import { BUILD_ENV, PROJECT_ENV, START_ENV, parseTableList, quoteValue } from '../src/contract';

const BUILD_ID = 'DrProject:0b6c1c1e-0000-4000-8000-000000000001';
const SECRET_REF = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-master-AbCdEf:password';
/** What CodeBuild would have put in the variable: the master password. */
const PASSWORD = 'Zq7,wX9!correct horse battery';

const codebuild = mockClient(CodeBuildClient);
beforeEach(() => codebuild.reset());

function answerWith(variables: Array<{ name: string; value: string; type?: string }>): void {
  codebuild.on(BatchGetBuildsCommand, { ids: [BUILD_ID] }).resolves({
    builds: [{ id: BUILD_ID, projectName: 'DrProject', environment: { type: 'LINUX_CONTAINER', image: 'x', computeType: 'BUILD_GENERAL1_SMALL', environmentVariables: variables as EnvironmentVariable[] } }],
  });
}

describe('assertPlaintextStartVariables', () => {
  test('a start variable passed as SECRETS_MANAGER is refused by name and type, without its value or reference', async () => {
    answerWith([
      { name: PROJECT_ENV.SOURCE_INSTANCE_ID, value: 'orders-db', type: 'PLAINTEXT' },
      { name: START_ENV.RESTORE_TIME, value: 'latest', type: 'PLAINTEXT' },
      { name: START_ENV.DATABASES, value: SECRET_REF, type: 'SECRETS_MANAGER' },
    ]);

    const refusal = assertPlaintextStartVariables(BUILD_ID, new CodeBuildClient({ region: 'eu-west-1' }));

    await expect(refusal).rejects.toThrow(new RegExp(`^${START_ENV.DATABASES}: passed as type SECRETS_MANAGER, .*accepted: type ${ACCEPTED_START_VARIABLE_TYPE} only`));
    const message = await refusal.catch((e: Error) => e.message);
    expect(message).toMatch(/Nothing was read from the start variables, created or changed\.$/);
    expect(message).not.toContain('secretsmanager:');
    expect(message).not.toContain(PASSWORD);
    expect(codebuild.commandCalls(BatchGetBuildsCommand)).toHaveLength(1);
  });

  test('every non-PLAINTEXT start variable is named at once; project variables of other types are not start variables', async () => {
    answerWith([
      // The construct may one day pass its own variables by reference: not a start variable, not refused.
      { name: PROJECT_ENV.SECRET_ARN, value: 'x', type: 'SECRETS_MANAGER' },
      { name: START_ENV.CONFIRM, value: '/db/confirm', type: 'PARAMETER_STORE' },
      { name: START_ENV.TABLES, value: SECRET_REF, type: 'SECRETS_MANAGER' },
      { name: START_ENV.STRATEGY, value: 'swap' },
    ]);
    const message = await assertPlaintextStartVariables(BUILD_ID, new CodeBuildClient({ region: 'eu-west-1' })).catch((e: Error) => e.message);
    expect(message).toMatch(/^2 start variables were not passed as PLAINTEXT: CONFIRM: passed as type PARAMETER_STORE, .*Parameter Store.* TABLES: passed as type SECRETS_MANAGER/);
    expect(message).not.toContain(PROJECT_ENV.SECRET_ARN);
    expect(message).not.toContain('/db/confirm');
  });

  test('PLAINTEXT (or no type, CodeBuild\'s default) passes', async () => {
    answerWith([{ name: START_ENV.RESTORE_TIME, value: 'latest', type: 'PLAINTEXT' }, { name: START_ENV.CONFIRM, value: 'orders-db' }]);
    await expect(assertPlaintextStartVariables(BUILD_ID, new CodeBuildClient({ region: 'eu-west-1' }))).resolves.toBeUndefined();
  });

  test('refuses when CodeBuild cannot be asked or does not know the build: the types cannot be checked otherwise', async () => {
    codebuild.on(BatchGetBuildsCommand).rejects(Object.assign(new Error('User is not authorized to perform codebuild:BatchGetBuilds'), { name: 'AccessDeniedException' }));
    await expect(assertPlaintextStartVariables(BUILD_ID, new CodeBuildClient({ region: 'eu-west-1' })))
      .rejects.toThrow(/could not ask CodeBuild how the start variables of build .* were passed \(BatchGetBuilds: AccessDeniedException: .*refuses to read start variables whose type it cannot check/);
    codebuild.reset();
    codebuild.on(BatchGetBuildsCommand).resolves({ builds: [], buildsNotFound: [BUILD_ID] });
    await expect(assertPlaintextStartVariables(BUILD_ID, new CodeBuildClient({ region: 'eu-west-1' }))).rejects.toThrow(/CodeBuild does not know build/);
    await expect(assertPlaintextStartVariables(undefined)).rejects.toThrow(new RegExp(`^${BUILD_ENV.BUILD_ID}: not set`));
  });

  test('startVariableTypeProblems reads CodeBuild\'s shape directly', () => {
    expect(startVariableTypeProblems([{ name: START_ENV.MODE, value: 'drill', type: 'PLAINTEXT' }])).toEqual([]);
    expect(startVariableTypeProblems([{ name: START_ENV.MODE, value: 'p', type: 'PARAMETER_STORE' }])).toHaveLength(1);
  });
});

describe('no start value is quoted whole', () => {
  test('quoteValue: a short clean value as it is; anything else cut at the first other character or 16, with its length', () => {
    expect(quoteValue('swap')).toBe('"swap"');
    expect(quoteValue('2026-11-24T09:30:00Z')).toBe('"2026-11-24T09:30…" (20 characters)');
    expect(quoteValue(PASSWORD)).toBe(`"Zq7…" (${PASSWORD.length} characters)`);
    expect(quoteValue(' leading space')).toBe('"…" (14 characters)');
    expect(quoteValue(undefined)).toBe('nothing');
    expect(quoteValue(['a'])).toBe('a list');
  });

  // What a start variable holding the master password (resolved by CodeBuild) would have shown before.
  const leaks = (message: string) => [PASSWORD, 'correct horse', 'battery'].filter((part) => message.includes(part));
  const recovery = (overrides: Record<string, string>) => ({
    [PROJECT_ENV.SOURCE_INSTANCE_ID]: 'orders-db', [BUILD_ENV.BUILD_ID]: BUILD_ID, [START_ENV.RESTORE_TIME]: 'latest', [START_ENV.CONFIRM]: 'orders-db', ...overrides,
  });
  const messageOf = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error('expected a refusal');
  };

  // DATABASES is left out: split on commas, a password is a list of valid database names, refused only once the
  // instance is asked (quoted cut there too); the type check before all this is what keeps it out of the log.
  test.each([
    START_ENV.RESTORE_TIME, START_ENV.CONFIRM, START_ENV.STRATEGY, START_ENV.JOBS, START_ENV.FORCE,
    START_ENV.SAFETY_SNAPSHOT, START_ENV.TEMP_INSTANCE_CLASS, START_ENV.ACCEPT_HAZARDS, START_ENV.TABLES, START_ENV.TABLE_MODE,
  ])('recovery: %s holding the password is refused by name, the value never whole', (name) => {
    const message = messageOf(() => readStartRequest(recovery({ [name]: PASSWORD }), { cpus: 2 }));
    expect(message).toContain(`${name}: `);
    expect(leaks(message)).toEqual([]);
  });

  test('a database listed twice and a table scope over several databases quote no list whole', () => {
    const twice = messageOf(() => readStartRequest(recovery({ [START_ENV.DATABASES]: `${'x'.repeat(20)},${'x'.repeat(20)}` }), { cpus: 2 }));
    expect(twice).toContain('is listed twice');
    expect(twice).not.toContain('x'.repeat(17));
    expect(messageOf(() => parseTableList(`a.${PASSWORD.replace(/,/g, '')}`))).not.toContain('correct horse');
  });

  test.each([START_ENV.RESTORE_TIME, START_ENV.TABLES, START_ENV.JOBS])('drill: %s holding the password is refused, the value never whole', (name) => {
    const message = messageOf(() => readDrillRequest({ ...recovery({ [START_ENV.MODE]: 'drill' }), [name]: PASSWORD }, { cpus: 2 }));
    expect(message).toContain(`${name}: `);
    expect(leaks(message)).toEqual([]);
  });

  test.each([START_ENV.OLDER_THAN, START_ENV.DRY_RUN, START_ENV.CONFIRM])('housekeeping: %s holding the password is refused, the value never whole', (name) => {
    const env = { [PROJECT_ENV.SOURCE_INSTANCE_ID]: 'orders-db', [START_ENV.MODE]: 'housekeeping', [START_ENV.OLDER_THAN]: '7d', [START_ENV.CONFIRM]: 'orders-db', [name]: PASSWORD };
    const message = messageOf(() => readHousekeepingRequest(env));
    expect(message).toContain(`${name}: `);
    expect(leaks(message)).toEqual([]);
  });
});
