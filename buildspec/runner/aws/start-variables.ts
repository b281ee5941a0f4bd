/**
 * How the start variables reached this build, asked of CodeBuild itself
 * before anything reads them. A start-build override carries a type as well
 * as a name and a value, and the grant that lets someone start a recovery
 * can limit the names but not the type (no condition key covers it). An
 * override of type SECRETS_MANAGER or PARAMETER_STORE is resolved by
 * CodeBuild with the build role, so `DATABASES` could arrive holding the
 * master password, and any message about that value would print it into a
 * log the person who started the build may read. So every start variable
 * must be PLAINTEXT, or the run stops here, naming the variable and its type
 * and never its value.
 */
import { BatchGetBuildsCommand, CodeBuildClient, type EnvironmentVariable } from '@aws-sdk/client-codebuild';
import { BUILD_ENV, START_ENV } from '../../../src/contract';

/** The one type a start variable may have: the value is the text the starter typed. */
export const ACCEPTED_START_VARIABLE_TYPE = 'PLAINTEXT';

const START_NAMES = new Set<string>(Object.values(START_ENV));

/**
 * The start variables among `variables` (the build's environment as
 * CodeBuild reports it) whose type is not PLAINTEXT, one problem each. A
 * variable without a type is PLAINTEXT, CodeBuild's default.
 */
export function startVariableTypeProblems(variables: readonly EnvironmentVariable[]): string[] {
  const problems: string[] = [];
  for (const v of variables) {
    if (!v.name || !START_NAMES.has(v.name)) continue;
    const type = v.type ?? ACCEPTED_START_VARIABLE_TYPE;
    if (type !== ACCEPTED_START_VARIABLE_TYPE) {
      problems.push(`${v.name}: passed as type ${type}, which CodeBuild resolves from ${type === 'SECRETS_MANAGER' ? 'Secrets Manager' : type === 'PARAMETER_STORE' ? 'Parameter Store' : 'elsewhere'} with the build role; `
        + `accepted: type ${ACCEPTED_START_VARIABLE_TYPE} only (start variables are the text you type; aws codebuild start-build ... --environment-variables-override name=${v.name},value=...,type=${ACCEPTED_START_VARIABLE_TYPE}).`);
    }
  }
  return problems;
}

/**
 * Throws, naming each start variable that is not PLAINTEXT and never its
 * value, unless CodeBuild reports this build (`CODEBUILD_BUILD_ID`) with
 * PLAINTEXT start variables only. Refuses too when CodeBuild cannot be
 * asked: the types cannot be known otherwise.
 */
export async function assertPlaintextStartVariables(buildId: string | undefined, client: CodeBuildClient = new CodeBuildClient({})): Promise<void> {
  const nothing = 'Nothing was read from the start variables, created or changed.';
  if (!buildId) {
    throw new Error(`${BUILD_ENV.BUILD_ID}: not set; accepted: the CodeBuild build id <project>:<uuid> (CodeBuild sets it), which the runner needs to check how the start variables were passed. ${nothing}`);
  }
  let variables: EnvironmentVariable[] | undefined;
  try {
    const answer = await client.send(new BatchGetBuildsCommand({ ids: [buildId] }));
    variables = answer.builds?.find((b) => b.id === buildId)?.environment?.environmentVariables;
    if (!answer.builds?.some((b) => b.id === buildId)) {
      throw new Error(`CodeBuild does not know build ${buildId}`);
    }
  } catch (err) {
    const e = err as { name?: string; message?: string };
    throw new Error(`could not ask CodeBuild how the start variables of build ${buildId} were passed (BatchGetBuilds: ${e.name ?? 'Error'}: ${e.message ?? String(err)}); `
      + 'accepted: a build role allowed codebuild:BatchGetBuilds on its project (the construct grants it) and a route to the CodeBuild API '
      + `(NAT, or a codebuild interface endpoint). The runner refuses to read start variables whose type it cannot check. ${nothing}`);
  }
  const problems = startVariableTypeProblems(variables ?? []);
  if (problems.length === 1) throw new Error(`${problems[0]} ${nothing}`);
  if (problems.length > 1) throw new Error(`${problems.length} start variables were not passed as ${ACCEPTED_START_VARIABLE_TYPE}: ${problems.join(' ')} ${nothing}`);
}
