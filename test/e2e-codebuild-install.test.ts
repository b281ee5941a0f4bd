/**
 * The shipped buildspec's install phase (buildspec/install-client.sh) as
 * CodeBuild runs it, on the CodeBuild stand-in: `runner.js client-major`
 * asks the RDS stand-in for the instance's EngineVersion, and the stub `dnf`
 * and `curl` first on PATH record what they were asked (the CDN probe answers
 * or times out; dnf installs nothing, the machine's PostgreSQL 15 client is
 * on PATH). Then the client/server check of the plan through the same path:
 * a runner whose pg_dump/pg_restore are of another major stops before any
 * CreateDBSnapshot or RestoreDBInstanceToPointInTime reaches the stand-in.
 * Needs `npx projen bundle`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_DATABASE } from './lab-stack';
import { otherMajorClientDirs, smallSeed, withWrappedBinaries } from './recovery-harness';
import { pgMajor } from '../local/pg-major';
import { SOURCE_ID, startWorld, type World } from './standin/world';
import { CHECKED_CLIENTS } from '../buildspec/runner/postgres/client-version';
import { PROJECT_ENV, START_ENV } from '../src/contract';

const BUNDLE = join(__dirname, '..', 'assets', 'runner', 'runner.js');
const ARCH = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
const REGION = 'us-east-1';

let world: World;
let serverMajor: string;

beforeAll(async () => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing; run \`npx projen bundle\` first.`);
  world = await startWorld();
  await world.script(smallSeed());
  serverMajor = (await world.sql('SHOW server_version_num')).trim().slice(0, -4);
});

afterAll(async () => {
  await world?.dispose();
});

/** Control-plane calls that create something. */
function creations(): number {
  return world.standIn.actionsCalled('CreateDBSnapshot').length + world.standIn.actionsCalled('RestoreDBInstanceToPointInTime').length;
}

/** A start that the runner refuses at once (no RESTORE_TIME): the install phase runs in full, the recovery not at all. */
const REFUSED_START = { [START_ENV.CONFIRM]: SOURCE_ID };

describe('install-client.sh chooses the client from the instance and installs it', () => {
  test('the CDN answers: the image\'s repositories, postgresql<major of EngineVersion>, versions checked and logged', async () => {
    const result = await world.runBuild(REFUSED_START);

    expect(result.log).toMatch(new RegExp(`\\[install\\] ${SOURCE_ID} runs PostgreSQL ${serverMajor}\\.\\d+ \\(EngineVersion, from DescribeDBInstances\\): the client is PostgreSQL ${serverMajor} \\(package postgresql${serverMajor}\\)`));
    expect(result.log).toContain('[install] package repositories: cdn.amazonlinux.com answers (the image\'s default repositories)');
    expect(result.stubCalls.map((c) => c.tool)).toEqual(['curl', 'dnf']);
    expect(result.stubCalls[0].args).toEqual(expect.arrayContaining(['--connect-timeout', '5', `https://cdn.amazonlinux.com/al2023/core/mirrors/latest/${ARCH}/mirror.list`]));
    expect(result.stubCalls[1].args).toEqual(['install', '-y', '--releasever=latest', '--allowerasing', '--setopt=install_weak_deps=False', `postgresql${serverMajor}`]);
    expect(result.log).toMatch(new RegExp(`\\[install\\] client for PostgreSQL ${serverMajor}: pg_dump \\(PostgreSQL\\) ${serverMajor}\\.\\d+.*, pg_restore \\(PostgreSQL\\) ${serverMajor}\\.`));
    // The install phase passed; the build phase refused the start.
    expect(result.log).toContain('[Container] Entering phase BUILD');
    expect(result.failedPhase).toBe('BUILD');
  });

  test('the CDN cannot be reached (no NAT): dnf is pointed at the region\'s S3 repository, the log says so, and the recovery goes on', async () => {
    const result = await world.runBuild({ [START_ENV.RESTORE_TIME]: 'latest', [START_ENV.CONFIRM]: SOURCE_ID, [START_ENV.DATABASES]: LAB_DATABASE }, { install: { cdnReachable: false } });

    const host = `al2023-repos-${REGION}-de612dc2.s3.${REGION}.amazonaws.com`;
    expect(result.log).toContain(`[install] package repositories: cdn.amazonlinux.com cannot be reached from the build's subnets (no NAT?); using the region's Amazon Linux 2023 repository in S3 instead, https://${host} (reachable through an S3 gateway endpoint)`);
    expect(result.stubCalls.map((c) => c.tool)).toEqual(['curl', 'dnf']);
    const dnf = result.stubCalls[1];
    const reposdir = dnf.args.find((a) => a.startsWith('--setopt=reposdir='));
    expect(dnf.args).toEqual(['install', '-y', '--releasever=latest', '--allowerasing', '--setopt=install_weak_deps=False', reposdir, `postgresql${serverMajor}`]);
    // Only this repository: the image's own (the CDN) is not in that directory.
    expect(Object.keys(dnf.repoFiles)).toEqual(['pitr-al2023-s3.repo']);
    const repo = dnf.repoFiles['pitr-al2023-s3.repo'];
    expect(repo).toContain(`mirrorlist=https://${host}/core/mirrors/$releasever/$basearch/mirror.list\n`);
    expect(repo).toMatch(/^enabled=1$/m);
    expect(repo).toMatch(/^gpgcheck=1$/m);
    expect(repo).toContain('gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-amazon-linux-2023');
    // The regional IPv4 host for any mirror list that names hosts through dnf's variables (gateway endpoints do not serve dualstack).
    expect(dnf.vars).toEqual({ awsregion: REGION, awsdomain: 'amazonaws.com', dualstack: '' });
    expect(result.log).toContain('RESULT: SUCCESS: 1 database(s) recovered and verified.');
    expect(result.status).toBe('SUCCEEDED');
  });

  test('dnf fails: the install phase stops with what to check, before the runner starts; nothing is created', async () => {
    const before = creations();
    const result = await world.runBuild({ [START_ENV.RESTORE_TIME]: 'latest', [START_ENV.CONFIRM]: SOURCE_ID }, { install: { cdnReachable: false, dnfExit: 1 } });

    expect(result.status).toBe('FAILED');
    expect(result.failedPhase).toBe('INSTALL');
    expect(result.log).toContain(`[install] FAILED: package postgresql${serverMajor} could not be installed. Either the package repositories are unreachable from the build's subnets`);
    expect(result.log).not.toContain('[Container] Entering phase BUILD');
    expect(creations()).toBe(before);
  });

  test('PG_CLIENT_VERSION (the deprecated postgresClientVersion) of another major stops the install, naming both; nothing is created', async () => {
    const before = creations();
    const other = serverMajor === '16' ? '17' : '16';
    const result = await world.runBuild({ [PROJECT_ENV.PG_CLIENT_VERSION]: other, [START_ENV.RESTORE_TIME]: 'latest', [START_ENV.CONFIRM]: SOURCE_ID });

    expect(result.failedPhase).toBe('INSTALL');
    expect(result.log).toMatch(new RegExp(`\\[install\\] FAILED: PG_CLIENT_VERSION \\(the deprecated \`postgresClientVersion\` prop\\) is "${other}", but instance "${SOURCE_ID}" runs PostgreSQL ${serverMajor}\\.\\d+.*set it to ${serverMajor}, then deploy\\. Nothing was installed, created or changed\\.`));
    expect(result.stubCalls).toEqual([]);
    expect(creations()).toBe(before);
  });
});

// The pairing proven here is the one that fails on AWS (pg_restore 17+ against a server up to 16), and the install
// phase must find this machine's 15 client on PATH: it runs with the 15 server (PG_MAJOR unset or 15), and is
// reported as skipped on 17 and 18, where client-version.test.ts covers the plan's refusal.
(pgMajor() === '15' ? describe : describe.skip)('a client of another major is refused before anything reaches the stand-in', () => {
  const real = otherMajorClientDirs(15)[0];
  const wrappers = Object.fromEntries(CHECKED_CLIENTS.map((tool) => [tool, real
    ? `exec ${JSON.stringify(join(real, tool))} "$@"`
    : `if [ "$1" = "--version" ]; then echo "${tool} (PostgreSQL) 17.6"; exit 0; fi\nexec "$REAL" "$@"`]));
  const which = real ? `the real client in ${real}` : 'the real 15 client answering --version as 17.6';

  test(`on PATH after the install (${which}): install-client.sh's own check stops the build`, async () => {
    const before = creations();
    // The CodeBuild stand-in puts PG_BIN_DIR's directory first on PATH, where dnf would have installed the client.
    const result = await withWrappedBinaries(wrappers, () => world.runBuild({ [START_ENV.RESTORE_TIME]: 'latest', [START_ENV.CONFIRM]: SOURCE_ID }));

    expect(result.failedPhase).toBe('INSTALL');
    expect(result.log).toMatch(new RegExp(`\\[install\\] FAILED: pg_dump on PATH \\(.*/pg_dump\\) prints "pg_dump \\(PostgreSQL\\) 1[6-9]\\.[^"]*", not major ${serverMajor}, the instance's\\. Nothing was created or changed\\.`));
    expect(creations()).toBe(before);
  });

  test(`in the runner's PG_BIN_DIR (${which}): the plan refuses it, naming both versions`, async () => {
    const before = creations();
    const result = await withWrappedBinaries(wrappers, async () => {
      // Only the runner's: the install phase finds this machine's PostgreSQL 15 client on PATH.
      const dir = process.env.PG_BIN_DIR!;
      delete process.env.PG_BIN_DIR;
      return world.runBuild({ [START_ENV.RESTORE_TIME]: 'latest', [START_ENV.CONFIRM]: SOURCE_ID, PG_BIN_DIR: dir });
    });

    expect(result.failedPhase).toBe('BUILD');
    expect(result.log).toMatch(new RegExp(`RESULT: FAILED in step "Plan and validate": the PostgreSQL client does not match the original ${SOURCE_ID} \\(EngineVersion ${serverMajor}\\.\\d+[^)]*\\): `
      + `pg_dump (1[6-9])\\.\\d+ \\(.*\\), pg_restore \\1\\.\\d+ \\(.*\\) against PostgreSQL ${serverMajor}\\.`));
    expect(result.log).toMatch(/pg_restore 17 and later send SET transaction_timeout, which servers up to 16 reject/);
    expect(creations()).toBe(before);
  });
});
