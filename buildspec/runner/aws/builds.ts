/**
 * CodeBuild behind `BuildStatus`: BatchGetBuilds, for builds of this build's
 * own project only (the build role may read no other project's builds).
 */
import { BatchGetBuildsCommand, CodeBuildClient } from '@aws-sdk/client-codebuild';
import type { BuildStatus } from '../ports';

/** `<project>:<uuid>` -> `<project>`. */
function projectOf(buildId: string): string {
  return buildId.slice(0, buildId.lastIndexOf(':'));
}

export class AwsBuildStatus implements BuildStatus {
  private readonly project: string;

  /** `ownBuildId`: this build's CODEBUILD_BUILD_ID, which names the project. */
  constructor(ownBuildId: string, private readonly client: CodeBuildClient = new CodeBuildClient({})) {
    this.project = projectOf(ownBuildId);
  }

  /** Ids of another project are not asked about: they are left out of the answer, i.e. unknown. */
  async statusOf(buildIds: readonly string[]): Promise<ReadonlyMap<string, string>> {
    const ours = buildIds.filter((id) => projectOf(id) === this.project);
    const out = new Map<string, string>();
    // BatchGetBuilds takes at most 100 ids.
    for (let i = 0; i < ours.length; i += 100) {
      let answer;
      try {
        answer = await this.client.send(new BatchGetBuildsCommand({ ids: ours.slice(i, i + 100) }));
      } catch (err) {
        const e = err as { name?: string; message?: string };
        throw new Error(`CodeBuild BatchGetBuilds on project "${this.project}" failed: ${e.name ?? 'Error'}: ${e.message ?? String(err)}`);
      }
      for (const build of answer.builds ?? []) if (build.id && build.buildStatus) out.set(build.id, build.buildStatus);
    }
    return out;
  }
}
