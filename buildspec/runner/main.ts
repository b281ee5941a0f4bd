/**
 * The recovery runner's command line (bundled to assets/runner/runner.js):
 *
 * - `recover`  — the CodeBuild run: the start contract from the environment,
 *   AWS control plane, TLS verify-full with the RDS CA bundle.
 * - `copy`     — the data path on its own (see copy-cli.ts).
 * - `rehearse` — a full recovery on throwaway local PostgreSQL.
 *
 * SIGTERM (CodeBuild's stop and timeout) and SIGINT abort the run: it stops
 * at the next safe point, deletes the temporary instance and exits non-zero.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { AwsRdsControl } from './aws/rds-control';
import { readDatabaseCredentials } from './aws/secret';
import { runCopyCli } from './copy-cli';
import { REHEARSE_EXIT, REHEARSE_HELP, parseRehearseArgs, rehearse } from './local/rehearse';
import { StepLog } from './log';
import { readStartRequest } from './plan';
import { PgDataPath } from './postgres/data-path';
import { runRecovery } from './workflow';
import { PROJECT_ENV } from '../../src/contract';

const USAGE = [
  'usage: runner.js <command>',
  '  recover                     point-in-time recovery on AWS (CodeBuild; reads the start variables from the environment)',
  '  copy --source <uri> --target <uri> --database <name> [--database ...] [--strategy swap|replace] [--jobs N]',
  '  rehearse [--seed file.sql] [--damage file.sql] [--strategy swap|replace] [--sslmode verify-full|disable] [--one-host] [--keep] [--help]',
  '                              (seed and damage run as the local superuser in database "orders", owned by the master user)',
].join('\n');

const EXIT_FAILED = 1;
const EXIT_USAGE = 64;
const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'recover':
      return withStopSignals((signal) => recover(signal));
    case 'copy':
      return runCopyCli([...rest]);
    case 'rehearse': {
      let options;
      try {
        options = parseRehearseArgs(rest);
      } catch (err) {
        process.stderr.write(`rehearse: ${(err as Error).message}\n`);
        return REHEARSE_EXIT.USAGE;
      }
      if (options.help) {
        process.stdout.write(`${REHEARSE_HELP}\n`);
        return REHEARSE_EXIT.PASSED;
      }
      return withStopSignals((signal) => rehearse(options, signal));
    }
    default:
      process.stderr.write(`${command === undefined ? 'no command given' : `${JSON.stringify(command)} is not a command`}\n${USAGE}\n`);
      return EXIT_USAGE;
  }
}

/** The CodeBuild run. Resolves to the exit code; 0 only when every database was recovered and verified. */
async function recover(signal: AbortSignal): Promise<number> {
  const log = new StepLog();
  const env = process.env;
  let setup;
  try {
    setup = await log.step('Read the start variables and the secret', async () => {
      const request = readStartRequest(env, { cpus: availableParallelism() });
      const caBundle = env[PROJECT_ENV.PG_CA_BUNDLE];
      if (!caBundle || !existsSync(caBundle)) {
        throw new Error(`${PROJECT_ENV.PG_CA_BUNDLE}: ${JSON.stringify(caBundle ?? '')} is not a readable file; accepted: the path of the RDS CA bundle the buildspec downloads (needed for sslmode=verify-full). Nothing was created or changed.`);
      }
      const credentials = await readDatabaseCredentials(env[PROJECT_ENV.SECRET_ARN] ?? '');
      log.redact(credentials.password);
      return { request, caBundle, credentials, secretId: env[PROJECT_ENV.SECRET_ARN] };
    });
  } catch (err) {
    log.warn(`RESULT: FAILED: ${(err as Error).message}`);
    return EXIT_FAILED;
  }
  try {
    await runRecovery(setup.request, {
      rds: new AwsRdsControl({ log }),
      data: new PgDataPath(),
      log,
      credentials: setup.credentials,
      secretId: setup.secretId,
      tls: { sslMode: 'verify-full', sslRootCert: setup.caBundle },
      signal,
    });
    return 0;
  } catch {
    // runRecovery has already logged the cause and what was (not) changed in its summary.
    return EXIT_FAILED;
  }
}

/**
 * Turns SIGTERM/SIGINT into an abort of `run`, and keeps them from killing
 * the process while cleanup runs. A stopped run exits 143 (SIGTERM) or 130.
 */
async function withStopSignals(run: (signal: AbortSignal) => Promise<number>): Promise<number> {
  const controller = new AbortController();
  let received: string | undefined;
  const onSignal = (name: string): void => {
    if (received) {
      process.stderr.write(`${name} received again: cleanup is in progress and deletes the temporary instance; please wait.\n`);
      return;
    }
    received = name;
    process.stderr.write(`${name} received: stopping at the next safe point, then cleaning up.\n`);
    controller.abort(new Error(`stopped by ${name} (CodeBuild sends SIGTERM when a build is stopped or times out)`));
  };
  const onTerm = (): void => onSignal('SIGTERM');
  const onInt = (): void => onSignal('SIGINT');
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  try {
    const code = await run(controller.signal);
    return received && code !== 0 ? SIGNAL_EXIT[received] : code;
  } finally {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // An idle keep-alive socket of an SDK client must not hold the build open once the run is over.
      setTimeout(() => process.exit(code), 5_000).unref();
    },
    (err) => {
      process.stderr.write(`runner: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = EXIT_FAILED;
    },
  );
}
