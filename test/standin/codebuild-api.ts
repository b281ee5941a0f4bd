/**
 * A small CodeBuild API stand-in (awsJson1.1, `X-Amz-Target:
 * CodeBuild_20161006.<Action>`) for the bundled trigger Lambda:
 * BatchGetBuilds answers from the builds it knows, and StartBuild runs the
 * synthesized project's build on this machine through `start`. Anything
 * else is refused as not implemented. Not a test file.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface KnownBuild {
  readonly id: string;
  readonly arn: string;
  readonly projectName: string;
  buildStatus: 'IN_PROGRESS' | 'SUCCEEDED' | 'FAILED' | 'FAULT' | 'STOPPED' | 'TIMED_OUT';
  buildComplete: boolean;
  readonly environmentVariablesOverride?: ReadonlyArray<{ readonly name: string; readonly value: string; readonly type?: string }>;
}

export interface CodeBuildApi {
  readonly endpoint: string;
  readonly builds: Map<string, KnownBuild>;
  /** Targets received, in order. */
  readonly received: string[];
  stop(): Promise<void>;
}

export type StartHandler = (projectName: string, overrides: Readonly<Record<string, string>>) => KnownBuild;

export async function startCodeBuildApi(options: { readonly projectName: string; readonly start?: StartHandler }): Promise<CodeBuildApi> {
  const builds = new Map<string, KnownBuild>();
  const received: string[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '');
      received.push(target);
      const reply = (status: number, payload: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(payload));
      };
      try {
        const input = JSON.parse(body || '{}');
        if (target === 'CodeBuild_20161006.BatchGetBuilds') {
          const ids: string[] = input.ids ?? [];
          return reply(200, {
            builds: ids.flatMap((id) => (builds.has(id) ? [builds.get(id)] : [])),
            buildsNotFound: ids.filter((id) => !builds.has(id)),
          });
        }
        if (target === 'CodeBuild_20161006.StartBuild' && options.start) {
          if (input.projectName !== options.projectName) {
            return reply(400, { __type: 'ResourceNotFoundException', message: `Project cannot be found: ${input.projectName}` });
          }
          const variables: Array<{ name: string; value: string }> = input.environmentVariablesOverride ?? [];
          const overrides = Object.fromEntries(variables.map((v) => [v.name, v.value]));
          const build = options.start(input.projectName, overrides);
          builds.set(build.id, build);
          return reply(200, { build });
        }
        return reply(400, { __type: 'InvalidInputException', message: `the CodeBuild stand-in does not implement ${target}` });
      } catch (err) {
        return reply(500, { __type: 'InternalFailure', message: (err as Error).message });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    builds,
    received,
    stop: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
