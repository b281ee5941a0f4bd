/**
 * A small CodeBuild API stand-in (awsJson1.1, `X-Amz-Target:
 * CodeBuild_20161006.<Action>`) for the runner and the bundled trigger
 * Lambda: BatchGetBuilds answers from the builds it knows, with each build's
 * environment variables as CodeBuild reports them (name, value as passed,
 * type); ListBuildsForProject lists them newest first; StartBuild and
 * StopBuild go to the handlers given (the synthesized project's build run on
 * this machine). Anything else is refused as not implemented. Not shipped.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An environment variable as StartBuild takes it and BatchGetBuilds reports it. */
export interface BuildVariable {
  readonly name: string;
  readonly value: string;
  readonly type?: string;
}

export interface KnownBuild {
  readonly id: string;
  readonly arn: string;
  readonly projectName: string;
  buildStatus: 'IN_PROGRESS' | 'SUCCEEDED' | 'FAILED' | 'FAULT' | 'STOPPED' | 'TIMED_OUT';
  buildComplete: boolean;
  readonly environmentVariablesOverride?: readonly BuildVariable[];
  /** The build's environment: the project's variables with the overrides applied, as BatchGetBuilds reports them. */
  readonly environment?: { readonly environmentVariables: readonly BuildVariable[] };
}

export interface CodeBuildApi {
  readonly endpoint: string;
  readonly builds: Map<string, KnownBuild>;
  /** Targets received, in order. */
  readonly received: string[];
  stop(): Promise<void>;
}

export type StartHandler = (projectName: string, overrides: readonly BuildVariable[]) => KnownBuild | Promise<KnownBuild>;
/** Stops a running build, as StopBuild does (the build ends STOPPED a little later). */
export type StopHandler = (build: KnownBuild) => void;

export async function startCodeBuildApi(options: {
  readonly projectName: string;
  readonly start?: StartHandler;
  readonly stopBuild?: StopHandler;
  /** The builds to answer for; a new map by default. */
  readonly builds?: Map<string, KnownBuild>;
  /**
   * The project's concurrent build limit: StartBuild is refused while this
   * many of its builds run ("builds return an error if the number of running
   * builds reaches the concurrent build limit for the project", CodeBuild
   * User Guide, Builds in AWS CodeBuild). The error's name is a guess.
   * @default no limit
   */
  readonly concurrentBuildLimit?: number;
}): Promise<CodeBuildApi> {
  const builds = options.builds ?? new Map<string, KnownBuild>();
  const received: string[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => void (async () => {
      const target = String(req.headers['x-amz-target'] ?? '');
      received.push(target);
      const reply = (status: number, payload: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(payload));
      };
      const notFound = (what: string): void => reply(400, { __type: 'ResourceNotFoundException', message: what });
      try {
        const input = JSON.parse(body || '{}');
        if (target === 'CodeBuild_20161006.BatchGetBuilds') {
          const ids: string[] = input.ids ?? [];
          return reply(200, {
            builds: ids.flatMap((id) => (builds.has(id) ? [builds.get(id)] : [])),
            buildsNotFound: ids.filter((id) => !builds.has(id)),
          });
        }
        if (target === 'CodeBuild_20161006.ListBuildsForProject') {
          if (input.projectName !== options.projectName) return notFound(`Project cannot be found: ${input.projectName}`);
          // CodeBuild's default order is DESCENDING: the newest build first.
          const ids = [...builds.values()].filter((b) => b.projectName === input.projectName).map((b) => b.id).reverse();
          return reply(200, { ids });
        }
        if (target === 'CodeBuild_20161006.StopBuild' && options.stopBuild) {
          const build = builds.get(input.id);
          if (!build || build.projectName !== options.projectName) return notFound(`Build cannot be found: ${input.id}`);
          if (!build.buildComplete) options.stopBuild(build);
          return reply(200, { build });
        }
        if (target === 'CodeBuild_20161006.StartBuild' && options.start) {
          if (input.projectName !== options.projectName) return notFound(`Project cannot be found: ${input.projectName}`);
          const running = [...builds.values()].filter((b) => b.projectName === input.projectName && !b.buildComplete).length;
          if (options.concurrentBuildLimit !== undefined && running >= options.concurrentBuildLimit) {
            return reply(400, { __type: 'AccountLimitExceededException', message: `Project ${input.projectName} has reached its concurrent build limit of ${options.concurrentBuildLimit}` });
          }
          const build = await options.start(input.projectName, input.environmentVariablesOverride ?? []);
          builds.set(build.id, build);
          return reply(200, { build });
        }
        return reply(400, { __type: 'InvalidInputException', message: `the CodeBuild stand-in does not implement ${target}` });
      } catch (err) {
        return reply(500, { __type: 'InternalFailure', message: (err as Error).message });
      }
    })());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  let stopped = false;
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    builds,
    received,
    stop: () => new Promise<void>((resolve) => {
      if (stopped) return resolve();
      stopped = true;
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
