/**
 * A grantee who may start recoveries but not read the master secret starts
 * one with a start variable of type SECRETS_MANAGER naming that secret
 * (`name=DATABASES,type=SECRETS_MANAGER,value=<secret arn>:password`).
 * CodeBuild resolves it with the build role, so the runner's environment
 * holds the password; the CodeBuild stand-in does the same (from moto's
 * Secrets Manager) and reports the variable's type through BatchGetBuilds.
 * The runner must refuse by name and type before anything reads the start
 * variables: the password never reaches the log, and nothing is created.
 * Needs `npx projen bundle`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startWorld, SOURCE_ID, type World } from './standin/world';
import { START_ENV } from '../src/contract';

const BUNDLE = join(__dirname, '..', 'assets', 'runner', 'runner.js');

let world: World;

beforeAll(async () => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing; run \`npx projen bundle\` first.`);
  world = await startWorld();
});

afterAll(async () => {
  await Promise.all([...(world?.runs.values() ?? [])].map((r) => r.done));
  await world?.dispose();
});

test.each([START_ENV.DATABASES, START_ENV.STRATEGY])('%s passed as SECRETS_MANAGER <secret arn>:password: refused by name and type, the password never in the log, nothing created', async (name) => {
  const callsBefore = world.standIn.calls.length;
  const lines: string[] = [];

  const { build, known } = await world.startBuildWith([
    { name: START_ENV.RESTORE_TIME, value: 'latest', type: 'PLAINTEXT' },
    { name: START_ENV.CONFIRM, value: SOURCE_ID, type: 'PLAINTEXT' },
    { name, value: `${world.secretArn}:password`, type: 'SECRETS_MANAGER' },
  ], { onLine: (line) => lines.push(line) });
  const result = await build.done;

  // The stand-in resolved the variable as CodeBuild would: without the type check the runner had held the password as a start value.
  expect(known.environment!.environmentVariables).toContainEqual({ name, value: `${world.secretArn}:password`, type: 'SECRETS_MANAGER' });
  expect(result.status).toBe('FAILED');
  expect(result.log).toMatch(new RegExp(`RESULT: FAILED: ${name}: passed as type SECRETS_MANAGER, .*accepted: type PLAINTEXT only`));
  expect(result.log).toContain('Nothing was read from the start variables, created or changed.');
  expect(result.log).not.toContain(world.password);
  expect(lines.join('\n')).not.toContain(world.password);
  // Nothing on RDS was created or changed, and the runner asked nothing: the only calls are the install phase's
  // DescribeDBInstances (the source's engine version, to choose the client), before the runner starts.
  expect(world.standIn.calls.slice(callsBefore).map((c) => c.action)).toEqual(['DescribeDBInstances']);
  expect(result.log.indexOf('passed as type SECRETS_MANAGER')).toBeGreaterThan(result.log.lastIndexOf('[install]'));
});

test('PLAINTEXT start variables pass the check (a dry-run housekeeping run reads them and ends)', async () => {
  const { build } = await world.startBuildWith([
    { name: START_ENV.MODE, value: 'housekeeping', type: 'PLAINTEXT' },
    { name: START_ENV.OLDER_THAN, value: '7d', type: 'PLAINTEXT' },
    { name: START_ENV.DRY_RUN, value: 'true', type: 'PLAINTEXT' },
  ]);
  const result = await build.done;
  expect(result.log).not.toMatch(/passed as type/);
  expect(result.status).toBe('SUCCEEDED');
});
