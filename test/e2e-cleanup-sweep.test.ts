/**
 * A build stopped while its temporary instance is still being created, end
 * to end on the stand-ins. RDS refuses to delete an instance while it is
 * `creating` (the stand-in's documented guess, local/rds-standin/engine.ts),
 * and a large restore stays `creating` for hours: the runner's own delete and
 * the trigger's dead-build cleanup (one Lambda run) are both refused. The
 * construct's cleanup sweep (a schedule rule sending the trigger its input
 * every 15 minutes) tries again each time, and deletes the instance once RDS
 * allows it. Needs `npx projen bundle`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { smallSeed } from './recovery-harness';
import { synthesizeLab, type LabDeployment } from './standin/lab-deployment';
import { invokeTrigger } from './standin/trigger';
import { PROJECT_NAME, SOURCE_ID, buildArnOf, startWorld, type World, until } from './standin/world';
import { BUILD_STATE_CHANGE, CLEANUP_SWEEP, START_ENV, temporaryInstancePrefix } from '../src/contract';

const BUNDLE = join(__dirname, '..', 'assets', 'runner', 'runner.js');

let lab: LabDeployment;
let world: World;

beforeAll(async () => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing; run \`npx projen bundle\` first.`);
  lab = synthesizeLab();
  world = await startWorld({ lab });
  await world.script(smallSeed());
});

afterAll(async () => {
  await Promise.all([...(world?.runs.values() ?? [])].map((r) => r.done));
  await world?.dispose();
  lab?.dispose();
});

const statusOf = (id: string): string | undefined => world.standIn.engine.listInstances().find((i) => i.id === id)?.status;

test('the construct schedules the sweep every 15 minutes with the input the trigger recognises', () => {
  expect(lab.cleanupSweep).toEqual({ schedule: 'rate(15 minutes)', input: CLEANUP_SWEEP });
});

test('a build stopped while its temporary instance is creating: the runner and the dead-build cleanup are refused, the sweep deletes it once RDS allows', async () => {
  // The point-in-time copy stays `creating` until released, as a large restore would for hours.
  let release: (() => void) | undefined;
  world.standIn.engine.faults = { onCopyUp: () => new Promise<void>((resolve) => (release = resolve)) };
  const { build, buildId } = world.startBuild({ [START_ENV.RESTORE_TIME]: 'latest', [START_ENV.CONFIRM]: SOURCE_ID });
  const temp = await until('the temporary instance to be restoring', () => (release ? world.standIn.engine.listInstances().find((i) => i.id.startsWith(temporaryInstancePrefix(SOURCE_ID)))?.id : undefined));
  expect(statusOf(temp)).toBe('creating');

  build.signal('SIGTERM');
  const result = await build.done;

  // The runner asked, RDS refused, and the log says what is left and how it goes.
  expect(world.standIn.actionsCalled('DeleteDBInstance').map((c) => c.params.DBInstanceIdentifier)).toContain(temp);
  expect(result.log).toMatch(new RegExp(`temporary instance ${temp} could not be deleted .*InvalidDBInstanceState.*currently creating`));
  expect(result.log).toMatch(new RegExp(`temporary instance ${temp} could not be deleted .*its sweep tries again every 15 minutes until RDS allows it`));
  expect(statusOf(temp)).toBe('creating');

  // The trigger's cleanup after the dead build: one Lambda run, refused too; the answer names the sweep.
  expect(world.codebuild.builds.get(buildId)).toMatchObject({ buildStatus: 'STOPPED', buildComplete: true });
  const event = {
    'source': BUILD_STATE_CHANGE.SOURCE,
    'detail-type': BUILD_STATE_CHANGE.DETAIL_TYPE,
    'detail': { 'build-status': 'STOPPED', 'project-name': PROJECT_NAME, 'build-id': buildArnOf(buildId) },
  };
  const cleanup = await invokeTrigger(world, world.codebuild, event);
  expect(cleanup.error?.message).toMatch(new RegExp(`could not delete ${temp} \\(InvalidDBInstanceStateFault: .*currently creating.*the cleanup sweep tries again every 15 minutes until the instance is gone`));
  expect(statusOf(temp)).toBe('creating');

  // A sweep while it is still being created: refused for now, said so, nothing thrown.
  const early = await invokeTrigger(world, world.codebuild, lab.cleanupSweep.input);
  expect(early.error).toBeUndefined();
  expect(early.result).toEqual({ deleted: [], waiting: [temp] });
  expect(early.logged.join('\n')).toContain(`Sweep: ${temp}, left by build ${buildId} (STOPPED), is creating; RDS refused to delete it for now`);

  // The restore completes; the next sweep deletes it.
  release!();
  await until('the temporary instance to be available', () => (statusOf(temp) === 'available' ? true : undefined));
  const later = await invokeTrigger(world, world.codebuild, lab.cleanupSweep.input);
  expect(later.error).toBeUndefined();
  expect(later.result).toEqual({ deleted: [temp], waiting: [] });
  await world.standIn.engine.waitUntilGone(temp);
  world.standIn.engine.faults = {};
});
