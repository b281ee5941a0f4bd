/**
 * The recovery runner's command line (bundled to assets/runner/runner.js):
 *
 * - `recover`  — the CodeBuild run: the start contract from the environment,
 *   AWS control plane, TLS verify-full with the RDS CA bundle. With
 *   `MODE=housekeeping` it drops old leftovers instead (housekeeping.ts);
 *   with `MODE=drill` it runs a restore drill (drill.ts).
 * - `copy`     — the data path on its own (see copy-cli.ts).
 * - `client-major` — the install phase: the PostgreSQL major of the source
 *   instance's EngineVersion, the client to install (client-major.ts).
 *
 * The rehearsal (`npx projen rehearse`, its own bundle) runs `recover`
 * from this file against an RDS stand-in.
 *
 * SIGTERM (CodeBuild's stop and timeout) and SIGINT abort the run: it stops
 * at the next safe point, deletes the temporary instance and exits non-zero.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { AwsBuildStatus } from './aws/builds';
import { AwsDrillPublisher } from './aws/publish';
import { AwsRdsClusterControl } from './aws/rds-cluster-control';
import type { AdapterLog } from './aws/rds-common';
import { AwsRdsControl } from './aws/rds-control';
import { readDatabaseCredentials } from './aws/secret';
import { assertPlaintextStartVariables } from './aws/start-variables';
import { readChangesModeRequest, runChangesMode } from './changes-mode';
import { runClientMajor } from './client-major';
import { runCopyCli } from './copy-cli';
import { readDrillRequest, runDrill } from './drill';
import { readHousekeepingRequest, runHousekeeping } from './housekeeping';
import { StepLog } from './log';
import { readStartRequest } from './plan';
import type { RdsControl } from './ports';
import { recordChanges } from './postgres/changes';
import { PgDataPath } from './postgres/data-path';
import { PgOriginalCatalog } from './postgres/leftovers';
import { PgTablePath } from './postgres/tables';
import { runAsMain, withStopSignals } from './stop-signals';
import { readRunnerTuning } from './tuning';
import { runRecovery } from './workflow';
import { BUILD_ENV, PROJECT_ENV, START_ENV, parseMode, sourceRefFromEnv } from '../../src/contract';

const USAGE = [
  'usage: runner.js <command>',
  '  recover                     point-in-time recovery on AWS (CodeBuild; reads the start variables from the environment)',
  '  copy --source <uri> --target <uri> --database <name> [--database ...] [--strategy swap|replace] [--jobs N]',
  '  client-major                the PostgreSQL major of SOURCE_INSTANCE_ID or SOURCE_CLUSTER_ID (its EngineVersion): the client the install phase installs',
].join('\n');

const EXIT_FAILED = 1;
const EXIT_USAGE = 64;

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'recover':
      return withStopSignals((signal) => recover(signal));
    case 'copy':
      return runCopyCli([...rest]);
    case 'client-major':
      return runClientMajor(process.env, awsRdsControlFor(process.env, { info: (m) => process.stderr.write(`${m}\n`), warn: (m) => process.stderr.write(`${m}\n`) }), {
        out: (text) => process.stdout.write(text),
        err: (text) => process.stderr.write(text),
      });
    case 'rehearse':
      // The rehearsal runs this file's `recover` against stand-ins that are not shipped: it is its own bundle.
      process.stderr.write('rehearse: the rehearsal is not part of the runner; in a clone of the repository run `npx projen rehearse` '
        + '(or `node assets/rehearsal/rehearse.js` after `npx projen bundle`). Nothing was started.\n');
      return EXIT_USAGE;
    default:
      process.stderr.write(`${command === undefined ? 'no command given' : `${JSON.stringify(command)} is not a command`}\n${USAGE}\n`);
      return EXIT_USAGE;
  }
}

/**
 * The RDS control plane for the source the project names: the Aurora DB
 * cluster adapter for SOURCE_CLUSTER_ID, the instance adapter otherwise (a
 * missing or doubled source variable is refused by the request readers).
 */
function awsRdsControlFor(env: NodeJS.ProcessEnv, log: AdapterLog): RdsControl {
  const ref = sourceRefFromEnv(env);
  return !('problem' in ref) && ref.kind === 'cluster' ? new AwsRdsClusterControl({ log }) : new AwsRdsControl({ log });
}

/** The CodeBuild run. Resolves to the exit code; 0 only when every database was recovered and verified. */
async function recover(signal: AbortSignal): Promise<number> {
  const log = new StepLog();
  const env = process.env;
  let setup;
  try {
    setup = await log.step('Read the start variables and the secret', async () => {
      // First of all: a start variable CodeBuild resolved from a secret must never reach a message.
      await assertPlaintextStartVariables(env[BUILD_ENV.BUILD_ID]);
      const mode = parseMode(env[START_ENV.MODE]?.trim());
      const request = mode === 'recover' ? readStartRequest(env, { cpus: availableParallelism() }) : undefined;
      const housekeeping = mode === 'housekeeping' ? readHousekeepingRequest(env) : undefined;
      const drill = mode === 'drill' ? readDrillRequest(env, { cpus: availableParallelism() }) : undefined;
      const changes = mode === 'changes' ? readChangesModeRequest(env) : undefined;
      const caBundle = env[PROJECT_ENV.PG_CA_BUNDLE];
      if (!caBundle || !existsSync(caBundle)) {
        throw new Error(`${PROJECT_ENV.PG_CA_BUNDLE}: ${JSON.stringify(caBundle ?? '')} is not a readable file; accepted: the path where the buildspec puts the RDS CA bundle shipped in the runner asset (needed for sslmode=verify-full). Nothing was created or changed.`);
      }
      const tuning = readRunnerTuning(env);
      for (const line of tuning.inEffect) log.info(`tuning (for the rehearsal's stand-ins; unset on AWS): ${line}`);
      const credentials = await readDatabaseCredentials(env[PROJECT_ENV.SECRET_ARN] ?? '');
      log.redact(credentials.password);
      return { request, housekeeping, drill, changes, caBundle, credentials, secretId: env[PROJECT_ENV.SECRET_ARN], tuning };
    });
  } catch (err) {
    log.warn(`RESULT: FAILED: ${(err as Error).message}`);
    return EXIT_FAILED;
  }
  const rds = awsRdsControlFor(env, log);
  const catalog = new PgOriginalCatalog();
  const builds = new AwsBuildStatus(env[BUILD_ENV.BUILD_ID] ?? '');
  const tls = { sslMode: 'verify-full', sslRootCert: setup.caBundle };
  if (setup.changes) {
    try {
      await runChangesMode(setup.changes, { rds, log, credentials: setup.credentials, tls });
      return 0;
    } catch {
      return EXIT_FAILED;
    }
  }
  if (setup.housekeeping) {
    try {
      await runHousekeeping(setup.housekeeping, { rds, catalog, builds, log, credentials: setup.credentials, tls });
      return 0;
    } catch {
      return EXIT_FAILED;
    }
  }
  // What a drill and a recovery share: the same control plane, data path, credentials and TLS.
  const common = {
    rds,
    log,
    tls,
    signal,
    data: new PgDataPath({ streamMinBytes: setup.tuning.streamMinBytes }),
    credentials: setup.credentials,
    secretId: setup.secretId,
    polling: setup.tuning.polling,
  };
  if (setup.drill) {
    try {
      const publisher = new AwsDrillPublisher({ topicArn: env[PROJECT_ENV.NOTIFICATION_TOPIC_ARN] || undefined });
      await runDrill(setup.drill, { ...common, publisher });
      return 0;
    } catch {
      // runDrill has logged and published the record that says why.
      return EXIT_FAILED;
    }
  }
  try {
    await runRecovery(setup.request!, { ...common, catalog, builds, tables: new PgTablePath(), changes: { record: recordChanges } });
    return 0;
  } catch {
    // runRecovery has already logged the cause and what was (not) changed in its summary.
    return EXIT_FAILED;
  }
}

if (require.main === module) runAsMain(main, 'runner', EXIT_FAILED);
