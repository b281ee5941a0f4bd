/**
 * The rehearsal bundle in a child process, as `npx projen rehearse` runs it:
 * by default it runs the bundled runner's `recover` (what CodeBuild runs)
 * against the RDS stand-in and moto; the full rehearsal passes, bad
 * arguments are refused, a missing moto_server is named, and SIGTERM during
 * the copy (what CodeBuild sends on stop or timeout) leaves the original
 * untouched and deletes the temporary instance. Needs `npx projen bundle`.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { SMALL_DAMAGE, expectSame, smallSeed } from './recovery-harness';
import { pgBin } from '../local/cluster';
import { startCodeBuildApi, type CodeBuildApi } from '../local/codebuild-api';
import { fingerprintDatabase, type SqlRunner } from '../local/fingerprint';
import { REHEARSAL_DATABASE } from '../local/rehearse';
import { TUNING_ENV, BUILD_ENV, PROJECT_ENV, START_ENV } from '../src/contract';

const execFileAsync = promisify(execFile);
const RUNNER = join(__dirname, '..', 'assets', 'runner', 'runner.js');
const REHEARSAL = join(__dirname, '..', 'assets', 'rehearsal', 'rehearse.js');

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly output: string;
}

/** Runs a bundle (the runner, or the rehearsal); `onLine` sees every output line as it arrives. */
function runBundle(
  bundle: string,
  args: string[],
  onLine: (line: string, child: ReturnType<typeof spawn>) => void = () => undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bundle, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let output = '';
    let pending = '';
    const take = (chunk: Buffer): void => {
      const text = chunk.toString();
      output += text;
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) onLine(line, child);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, output }));
  });
}

/** A superuser connection to a cluster the child left running, by libpq URI. */
function psqlAt(baseUri: string): SqlRunner {
  return {
    async sql(sql: string, database = 'postgres') {
      const uri = baseUri.replace(/\/[^/]*$/, `/${encodeURIComponent(database)}`);
      const { stdout } = await execFileAsync(pgBin('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', '-d', uri, '-c', sql], { maxBuffer: 64 * 1024 * 1024 });
      return stdout.trim();
    },
  };
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

type OnLine = (line: string, child: ReturnType<typeof spawn>) => void;
const runRunner = (args: string[], onLine?: OnLine, env?: NodeJS.ProcessEnv): Promise<Run> => runBundle(RUNNER, args, onLine, env);
const rehearse = (args: string[], onLine?: OnLine, env?: NodeJS.ProcessEnv): Promise<Run> => runBundle(REHEARSAL, args, onLine, env);

beforeAll(() => {
  for (const bundle of [RUNNER, REHEARSAL]) if (!existsSync(bundle)) throw new Error(`${bundle} is missing; run \`npx projen bundle\` first.`);
});

test('the default rehearsal runs runner.js recover through the AWS SDK against the stand-ins and recovers every database to its state at T', async () => {
  const run = await rehearse([]);
  expect(run.output).toMatch(/REHEARSAL PASSED: 2 database\(s\) equal their state at T/);
  expect(run.code).toBe(0);
  // What CodeBuild runs: the bundled runner's recover, reading its secret from Secrets Manager (moto) and talking to RDS (the stand-in).
  expect(run.output).toContain(`as on CodeBuild: node ${RUNNER} recover, through the AWS SDK`);
  expect(run.output).toMatch(/secret arn:aws:secretsmanager:us-east-1:\d{12}:secret:rehearsal-db\/master-\w+ on moto_server/);
  expect(run.output).toMatch(/tuning \(for the rehearsal's stand-ins; unset on AWS\): PITR_POLL_INTERVAL_MS=100/);
  // The rotated secret is refused by the copy at T; the password is reset through ModifyDBInstance, with RDS's statuses.
  expect(run.output).toMatch(/master password reset on rehearsal-db-pitr-\d{14}: modifying, password change pending/);
  expect(run.output).toMatch(/deletion requested \(no final snapshot, automated backups deleted; not waiting\)/);
  // The same step log as on AWS, the runner's own first step included.
  for (const step of ['Read the start variables and the secret', 'Plan and validate', 'Start safety snapshot of the original', 'Restore temporary instance at the restore time', 'Wait for the temporary instance', 'Match credentials to the current secret', 'Copy, verify and swap in', 'Clean up']) {
    expect(run.output).toMatch(new RegExp(`Z > ${step}\\n[^]*Z < ${step}: done in `));
  }
  expect(run.output).toMatch(/RESULT: SUCCESS/);
  expect(run.output).toMatch(/holds the pre-recovery data, post-T writes included/);
  // The production route by default: another host for the point-in-time copy, tables streamed in both formats, TLS verify-full.
  expect(run.output).toMatch(/temporary instance rehearsal-db-pitr-\d{14} is available at 127\.0\.0\.2:\d+/);
  expect(run.output).toMatch(/"orders": [\d.]+ MiB, .* [1-9]\d* table\(s\) streamed \([\d.]+ MiB; [1-9]\d* in binary, [1-9]\d* in text COPY\)/);
  expect(run.output).toMatch(/TLS verify-full against a throwaway CA/);
  expect(run.output).toMatch(/"orders": equal — 11 tables \(\d+ rows\): row counts \+ content checksums/);
});

test('--help lists the options and the exit codes; a bad --sslmode is refused naming the accepted values', async () => {
  const help = await rehearse(['--help']);
  expect(help.code).toBe(0);
  for (const option of ['--seed', '--damage', '--strategy', '--adapter', '--sslmode', '--one-host', '--keep']) expect(help.output).toContain(option);
  expect(help.output).toMatch(/Exit codes: 0 .* 1 .* 2 .* 3 .* 64 /);
  expect(help.output).not.toMatch(/> Rehearsal: /);
  const bad = await rehearse(['--sslmode', 'require']);
  expect(bad.code).toBe(64);
  expect(bad.output).toMatch(/--sslmode: "require" is not accepted; accepted: verify-full \| disable/);
  // The runner always verifies TLS, so a rehearsal without it cannot be the CodeBuild path.
  const plain = await rehearse(['--sslmode', 'disable']);
  expect(plain.code).toBe(64);
  expect(plain.output).toMatch(/--sslmode disable: runner.js recover always connects with sslmode=verify-full.*add --adapter local/);
});

test('without moto_server on PATH the rehearsal says so and exits 3, before starting any cluster', async () => {
  // Node and the PostgreSQL binaries, nothing else: no moto_server.
  const run = await rehearse([], undefined, { ...process.env, PATH: [dirname(process.execPath), '/usr/bin', '/bin'].join(':') });
  expect(run.code).toBe(3);
  expect(run.output).toMatch(/REHEARSAL FAILED: the rehearsal itself could not run .*moto_server is not on PATH.*pip install 'moto\[server\]'.*--adapter local\. Nothing was started\./);
  expect(run.output).not.toMatch(/> Rehearsal: start moto_server|instance rehearsal-db:/);
});

test('the runner no longer rehearses: it points to the rehearsal, starting nothing', async () => {
  const run = await runRunner(['rehearse']);
  expect(run.code).toBe(64);
  expect(run.output).toMatch(/rehearse: the rehearsal is not part of the runner; in a clone of the repository run `npx projen rehearse`/);
});

test('--adapter local --one-host --sslmode disable: the runbook in process through the local control plane, no TLS, the small seed below the 16 MiB streaming threshold', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pitr-local-'));
  try {
    writeFileSync(join(dir, 'seed.sql'), smallSeed());
    writeFileSync(join(dir, 'damage.sql'), SMALL_DAMAGE);
    const run = await rehearse(['--adapter', 'local', '--one-host', '--sslmode', 'disable', '--seed', join(dir, 'seed.sql'), '--damage', join(dir, 'damage.sql')]);
    expect(run.output).toMatch(/REHEARSAL PASSED: 2 database\(s\) equal their state at T/);
    expect(run.code).toBe(0);
    expect(run.output).toContain('rehearsal path: --adapter local: the runbook in this process through the local control plane (no AWS SDK)');
    expect(run.output).toContain('point-in-time copy on 127.0.0.1 (one host: tables from 16 MiB stream, as on AWS); TLS off');
    expect(run.output).toMatch(/"orders": [\d.]+ MiB, \d+ role references all present, 0 table\(s\) streamed/);
    expect(run.output).not.toMatch(/Read the start variables and the secret|moto_server/);
    expect(run.output).toMatch(/temporary instance rehearsal-db-pitr-\d{14} is available at 127\.0\.0\.1:\d+/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad arguments are refused with the usage, before anything starts', async () => {
  const run = await rehearse(['--strategy', 'overwrite']);
  expect(run.code).toBe(64);
  expect(run.output).toMatch(/--strategy: "overwrite" is not a strategy; accepted: swap \| replace/);
  expect(run.output).not.toMatch(/> Rehearsal: /);
  const missing = await rehearse(['--seed', '/nonexistent/seed.sql']);
  expect(missing.code).toBe(64);
  expect(missing.output).toMatch(/--seed: "\/nonexistent\/seed.sql" does not exist/);
});

test('recover refuses bad start variables before touching AWS (but asking CodeBuild how they were passed), naming each one', async () => {
  // The one call before the start variables are read: BatchGetBuilds on the runner's own build.
  const codebuild = await startCodeBuildApi({ projectName: 'proj' });
  codebuild.builds.set('proj:1234', {
    id: 'proj:1234',
    arn: 'arn:aws:codebuild:us-east-1:123456789012:build/proj:1234',
    projectName: 'proj',
    buildStatus: 'IN_PROGRESS',
    buildComplete: false,
    environment: { environmentVariables: [{ name: START_ENV.RESTORE_TIME, value: '2026-11-24 09:30', type: 'PLAINTEXT' }, { name: START_ENV.CONFIRM, value: 'other-db' }] },
  });
  try {
    await refusesBadStartVariables(codebuild);
  } finally {
    await codebuild.stop();
  }
});

async function refusesBadStartVariables(codebuild: CodeBuildApi): Promise<void> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    // Nothing listens here: had the runner called AWS (other than CodeBuild), the error would be a connection failure instead.
    AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
    AWS_ENDPOINT_URL_CODEBUILD: codebuild.endpoint,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'dummy',
    AWS_REGION: 'us-east-1',
    [PROJECT_ENV.SOURCE_INSTANCE_ID]: 'orders-db',
    [PROJECT_ENV.SECRET_ARN]: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf',
    [BUILD_ENV.BUILD_ID]: 'proj:1234',
    [START_ENV.RESTORE_TIME]: '2026-11-24 09:30',
    [START_ENV.CONFIRM]: 'other-db',
  };
  const run = await runRunner(['recover'], undefined, env);
  expect(run.code).toBe(1);
  expect(run.output).toMatch(/RESTORE_TIME: "2026-11-24…" \(16 characters\) is not a valid restore time/);
  expect(run.output).toMatch(/CONFIRM: "other-db" does not match the source instance; accepted: exactly "orders-db"/);
  expect(run.output).toMatch(/RESULT: FAILED: 2 problems, nothing was created or changed/);
  expect(run.output).not.toMatch(/ECONNREFUSED|127\.0\.0\.1:9/);

  // The rehearsal's tuning variables are checked there too, before the secret is read.
  const tuned = await runRunner(['recover'], undefined, {
    ...env,
    [START_ENV.RESTORE_TIME]: 'latest',
    [START_ENV.CONFIRM]: 'orders-db',
    [PROJECT_ENV.PG_CA_BUNDLE]: join(dirname(RUNNER), 'rds-ca-bundle.pem'),
    [TUNING_ENV.POLL_INTERVAL_MS]: 'fast',
  });
  expect(tuned.code).toBe(1);
  expect(tuned.output).toMatch(/RESULT: FAILED: PITR_POLL_INTERVAL_MS: "fast" is not accepted; accepted: a whole number from 50 to 30000, or unset \(the default, for AWS\)\. Nothing was created or changed\./);
  expect(tuned.output).not.toMatch(/ECONNREFUSED|127\.0\.0\.1:9/);
  expect(codebuild.received).toEqual(['CodeBuild_20161006.BatchGetBuilds', 'CodeBuild_20161006.BatchGetBuilds']);
}

test('SIGTERM during the copy: exits non-zero naming the signal, the original is untouched, the temporary instance is deleted', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pitr-sigterm-'));
  const seed = join(dir, 'seed.sql');
  const damage = join(dir, 'damage.sql');
  // The restore of shop.slow takes seconds, so the signal lands inside the copy.
  writeFileSync(seed, smallSeed(300));
  writeFileSync(damage, SMALL_DAMAGE);
  let superuserUri = '';
  let before: string[] | undefined;
  let signalled = false;
  let probe: Promise<void> | undefined;
  let output = '';
  try {
    const run = await rehearse(['--seed', seed, '--damage', damage, '--keep'], (line, child) => {
      const instance = /instance rehearsal-db: (postgresql:\/\/)pitr_master(@127\.0\.0\.1:\d+\/postgres)/.exec(line);
      if (instance) superuserUri = `${instance[1]}postgres${instance[2]}`;
      if (!signalled && / > Copy, verify and swap in$/.test(line)) {
        signalled = true;
        probe = fingerprintDatabase(psqlAt(superuserUri), REHEARSAL_DATABASE).then((facts) => {
          before = facts;
          child.kill('SIGTERM');
        });
      }
    });
    output = run.output;
    await probe;
    expect(signalled).toBe(true);
    expect(run.code).toBe(143);
    expect(run.output).toMatch(/SIGTERM received: stopping at the next safe point, then cleaning up\./);
    expect(run.output).toMatch(/RESULT: FAILED in step "Copy, verify and swap in": stopped by SIGTERM/);
    expect(run.output).toMatch(/temporary instance rehearsal-db-pitr-\d{14}: deletion requested/);
    expect(run.output).toMatch(/REHEARSAL FAILED: the recovery did not complete: stopped by SIGTERM/);

    // The production route: the point-in-time copy is another host than the original.
    const [, temporaryHost, temporaryPort] = /temporary instance rehearsal-db-pitr-\d{14} is available at (127\.0\.0\.2):(\d+)/.exec(run.output)!;
    expect(await accepts(temporaryHost, Number(temporaryPort))).toBe(false);
    expectSame(before!, await fingerprintDatabase(psqlAt(superuserUri), REHEARSAL_DATABASE));
  } finally {
    // --keep left the instance running; the run printed how to stop it.
    const stop = /stop and remove it: (.*)$/m.exec(output);
    if (stop) await execFileAsync('sh', ['-c', stop[1]]);
    rmSync(dir, { recursive: true, force: true });
  }
});
