/**
 * A recovery requested while a restore drill runs, end to end on the
 * stand-ins: the bundled trigger Lambda starts a drill (a real build of the
 * synthesized project), then receives a confirmed recovery request mid-copy.
 * It stops the drill through the CodeBuild stand-in (the runner gets
 * SIGTERM, as when CodeBuild stops the container, and deletes its temporary
 * instance on the way out), waits until the drill ended and its temporary
 * instance is deleting or gone, then starts the recovery, which recovers to
 * T. A running recovery is never stopped. Needs `npx projen bundle`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_DATABASE } from './lab-stack';
import { SMALL_DAMAGE, expectSame, smallSeed } from './recovery-harness';
import { synthesizeLab, type LabDeployment } from './standin/lab-deployment';
import { invokeTrigger } from './standin/trigger';
import { SOURCE_ID, startWorld, type World, sourceFingerprint } from './standin/world';
import { temporaryInstancePrefix } from '../src/contract';

const BUNDLE = join(__dirname, '..', 'assets', 'runner', 'runner.js');
/** Rows whose insert takes 20 ms each: a copy lasts long enough to be interrupted. */
const SLOW_ROWS = 200;
const STOP_BUILD = 'CodeBuild_20161006.StopBuild';

let lab: LabDeployment;
let world: World;

beforeAll(async () => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing; run \`npx projen bundle\` first.`);
  lab = synthesizeLab();
  world = await startWorld({ lab });
  await world.script(smallSeed(SLOW_ROWS));
});

afterAll(async () => {
  await Promise.all([...(world?.runs.values() ?? [])].map((r) => r.done));
  await world?.dispose();
  lab?.dispose();
});

const fingerprint = (): Promise<string[]> => sourceFingerprint(world);

function temporaryInstances(): string[] {
  return world.standIn.engine.listInstances().map((i) => i.id).filter((id) => id.startsWith(temporaryInstancePrefix(SOURCE_ID)));
}

test('a confirmed recovery stops the running drill, waits for its temporary instance to be deleting, starts, and recovers to T', async () => {
  const drill = await invokeTrigger(world, world.codebuild, { mode: 'drill' });
  expect(drill.error).toBeUndefined();
  const drillId = (drill.result as { buildId: string }).buildId;
  const drillRun = world.runs.get(drillId)!;
  // Mid-copy: the drill's temporary instance is up and in use.
  await drillRun.waitForLine(/"lab": copy data/);
  const drillInstance = temporaryInstances()[0];
  expect(world.standIn.engine.listInstances().find((i) => i.id === drillInstance)?.status).toBe('available');

  const atT = await fingerprint();
  await new Promise((r) => setTimeout(r, 30));
  const t = new Date();
  await new Promise((r) => setTimeout(r, 30));
  await world.script(SMALL_DAMAGE);

  const recovery = await invokeTrigger(world, world.codebuild, { restoreTime: t.toISOString(), confirm: SOURCE_ID, databases: [LAB_DATABASE] });

  expect(recovery.error).toBeUndefined();
  const started = recovery.result as { buildId: string; stoppedDrills?: string[] };
  expect(started.stoppedDrills).toEqual([drillId]);
  expect(started.buildId).not.toBe(drillId);
  expect(world.codebuild.received.filter((target) => target === STOP_BUILD)).toHaveLength(1);
  const logged = recovery.logged.join('\n');
  expect(logged).toContain(`Restore drill build ${drillId} of "${SOURCE_ID}" was running; stopping it (StopBuild) so that the recovery can run.`);
  expect(logged).toContain(`Stopped restore drill build ${drillId} first. Started recovery build ${started.buildId}`);
  // The drill ended STOPPED, its runner deleted its temporary instance on the way out, and it said so.
  const drillResult = await drillRun.done;
  expect(world.codebuild.builds.get(drillId)).toMatchObject({ buildStatus: 'STOPPED', buildComplete: true });
  expect(drillResult.log).toMatch(new RegExp(`temporary instance ${drillInstance}: deletion requested`));
  expect(world.standIn.engine.history.get(drillInstance)).toContain('deleting');

  const result = await world.runs.get(started.buildId)!.done;
  expect(result.log).toContain('RESULT: SUCCESS: 1 database(s) recovered and verified.');
  expectSame(atT, await fingerprint());
});

test('a running recovery is never stopped: a second request is refused, nothing started, the first one goes on', async () => {
  const first = await invokeTrigger(world, world.codebuild, { restoreTime: 'latest', confirm: SOURCE_ID, databases: [LAB_DATABASE] });
  expect(first.error).toBeUndefined();
  const firstId = (first.result as { buildId: string }).buildId;
  await world.runs.get(firstId)!.waitForLine(/"lab": copy data/);
  const stopsBefore = world.codebuild.received.filter((target) => target === STOP_BUILD).length;
  const buildsBefore = world.codebuild.builds.size;

  const second = await invokeTrigger(world, world.codebuild, { restoreTime: 'latest', confirm: SOURCE_ID });

  expect(second.result).toBeUndefined();
  expect(second.error?.message).toMatch(new RegExp(`^Recovery build ${firstId} of "${SOURCE_ID}" is running .*a running recovery is never stopped.*Nothing was started\\.$`));
  expect(world.codebuild.received.filter((target) => target === STOP_BUILD)).toHaveLength(stopsBefore);
  expect(world.codebuild.builds.size).toBe(buildsBefore);
  const result = await world.runs.get(firstId)!.done;
  expect(result.log).toContain('RESULT: SUCCESS');
});
