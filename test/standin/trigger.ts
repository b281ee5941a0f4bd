/**
 * The bundled trigger Lambda as Lambda would run it for the lab stack: the
 * staged asset's handler, the function's environment as synthesized
 * (resolved to this "deployment"), what Lambda itself sets, and the SDK
 * pointed at the RDS stand-in and a CodeBuild API stand-in. Not a test file.
 */
import { existsSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { World } from './world';
import type { CodeBuildApi } from '../../local/codebuild-api';
import { TRIGGER_ENV } from '../../src/contract';
import { DUMMY_AWS_ENV } from '../moto';

export interface TriggerInvocation {
  /** What the handler resolved to; undefined when it threw. */
  readonly result?: unknown;
  /** What it threw, if anything. */
  readonly error?: Error;
  /** Everything it logged. */
  readonly logged: string[];
}

/** Invokes the staged trigger handler once with `event`; never throws (the outcome says how it ended). */
export async function invokeTrigger(world: World, codebuild: CodeBuildApi, event: unknown): Promise<TriggerInvocation> {
  const { lab } = world;
  const functionEnv = Object.fromEntries(Object.entries(lab.triggerEnvironment).map(([k, v]) => [k, lab.resolve(v, world.physical)]));
  // The construct sets exactly these; anything else the handler needed would be missing on AWS too.
  const expected = [TRIGGER_ENV.PROJECT_NAME, world.sourceKind === 'cluster' ? TRIGGER_ENV.SOURCE_CLUSTER_ID : TRIGGER_ENV.SOURCE_INSTANCE_ID].sort();
  if (JSON.stringify(Object.keys(functionEnv).sort()) !== JSON.stringify(expected)) {
    throw new Error(`the synthesized trigger's environment is ${JSON.stringify(Object.keys(functionEnv))}, expected ${JSON.stringify(expected)}`);
  }
  const saved = { ...process.env };
  Object.assign(process.env, DUMMY_AWS_ENV, functionEnv, {
    AWS_ENDPOINT_URL_RDS: world.standIn.endpoint,
    AWS_ENDPOINT_URL_CODEBUILD: codebuild.endpoint,
  });
  const logged: string[] = [];
  const originalLog = console.log;
  console.log = (...args: unknown[]) => void logged.push(args.map(String).join(' '));
  try {
    const bundle = join(lab.triggerCodeDir, `${lab.triggerHandler.split('.')[0]}.js`);
    // The bundle leaves the AWS SDK v3 to the Lambda runtime (Node.js 22 ships it); here the repository's node_modules plays the runtime.
    const runtimeModules = join(lab.triggerCodeDir, 'node_modules');
    if (!existsSync(runtimeModules)) symlinkSync(join(__dirname, '..', '..', 'node_modules'), runtimeModules, 'dir');
    const handler = jest.requireActual<{ handler: (e: unknown, c: unknown) => Promise<unknown> }>(bundle).handler;
    const result = await handler(event, { getRemainingTimeInMillis: () => 60_000 });
    return { result, logged };
  } catch (err) {
    return { error: err as Error, logged };
  } finally {
    console.log = originalLog;
    process.env = saved;
  }
}
