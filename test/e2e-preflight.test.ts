/**
 * The plan's pre-flight through the CodeBuild path (issue #19): the
 * synthesized project runs the bundled runner against the RDS stand-in (the
 * AWS SDK on the wire) and a database holding objects owned by a role the
 * master user cannot act as. The refusal, with the copy's own fix, arrives in
 * the plan step: no CreateDBSnapshot and no RestoreDBInstanceToPointInTime
 * ever reaches the stand-in. Needs `npx projen bundle`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_DATABASE } from './lab-stack';
import { MASTER_USER, SOURCE_ID, startWorld, type World } from './standin/world';
import { LATEST, START_ENV, temporaryInstancePrefix } from '../src/contract';

const BUNDLE = join(__dirname, '..', 'assets', 'runner', 'runner.js');

let world: World;

beforeAll(async () => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing; run \`npx projen bundle\` first.`);
  world = await startWorld();
  await world.script(`
\\set ON_ERROR_STOP on
CREATE ROLE ledger_owner NOLOGIN;
GRANT CREATE ON DATABASE ${LAB_DATABASE} TO ledger_owner;
SET ROLE ledger_owner;
CREATE SCHEMA ledger;
CREATE TABLE ledger.entry (id int PRIMARY KEY, amount int NOT NULL);
INSERT INTO ledger.entry SELECT g, g FROM generate_series(1, 100) g;
`);
});

afterAll(async () => {
  await world?.dispose();
});

test('a membership the copy needs is missing: the build fails in the plan step with the GRANT to run; no snapshot and no restore reach RDS', async () => {
  const started = Date.now();
  const result = await world.runBuild({
    [START_ENV.RESTORE_TIME]: LATEST,
    [START_ENV.CONFIRM]: SOURCE_ID,
    [START_ENV.DATABASES]: LAB_DATABASE,
  });
  expect(result.status).toBe('FAILED');
  expect(result.log).toContain(`RESULT: FAILED in step "Plan and validate": pre-flight on the original: the user "${MASTER_USER}" on the original cannot act as "ledger_owner", `
    + `which own objects in database "${LAB_DATABASE}", so the restore could not give those objects their owners. As "${MASTER_USER}", run: GRANT "ledger_owner" TO "${MASTER_USER}"; `
    + 'then run again. Nothing was created or changed.');
  expect(result.log).toMatch(/pre-flight: roles and memberships: refused \(\d+\.\d\d s\)/);
  expect(world.standIn.actionsCalled('CreateDBSnapshot')).toEqual([]);
  expect(world.standIn.actionsCalled('RestoreDBInstanceToPointInTime')).toEqual([]);
  expect(world.standIn.engine.listInstances().map((i) => i.id).filter((id) => id.startsWith(temporaryInstancePrefix(SOURCE_ID)))).toEqual([]);
  // In the plan step: seconds, not the 10-30 minutes of a restore on AWS.
  expect(Date.now() - started).toBeLessThan(120_000);

  // The fix it gives, run as it says, lets the same request through the pre-flight.
  await world.sql(`GRANT ledger_owner TO ${MASTER_USER}`);
  // Memberships are restored with the instance: the restore time (the latest restorable) must come after the GRANT.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const again = await world.runBuild({
    [START_ENV.RESTORE_TIME]: LATEST,
    [START_ENV.CONFIRM]: SOURCE_ID,
    [START_ENV.DATABASES]: LAB_DATABASE,
  });
  expect(again.log).toMatch(/pre-flight: roles and memberships: passed/);
  expect(again.log).toMatch(/RESULT: SUCCESS: 1 database\(s\) recovered and verified\./);
  expect(again.status).toBe('SUCCEEDED');
});
