/**
 * `runner.js client-major`: the install phase's choice of client, from the
 * source instance's EngineVersion, and its refusals. The RDS answer is given
 * here as RDS would give it (the end-to-end path asks the RDS stand-in:
 * e2e-codebuild-install.test.ts).
 */
import { chooseClientMajor, runClientMajor } from '../buildspec/runner/client-major';
import type { SourceInstance } from '../buildspec/runner/ports';
import { PROJECT_ENV } from '../src/contract';

function rdsAnswering(engine: string, engineVersion: string) {
  return {
    describeSource: async (id: string): Promise<SourceInstance> => ({
      id,
      status: 'available',
      engine,
      engineVersion,
      endpoint: { host: 'db.example', port: 5432 },
      masterUsername: 'postgres',
      vpcSecurityGroupIds: [],
      backupRetentionPeriod: 7,
    }),
  };
}

const env = { [PROJECT_ENV.SOURCE_INSTANCE_ID]: 'orders-db' };

test.each([['15.8', 15], ['16.4', 16], ['17.2', 17], ['18.1', 18], ['18beta1', 18]])('EngineVersion %s: client %p', async (version, major) => {
  const lines: string[] = [];
  expect(await chooseClientMajor(env, rdsAnswering('postgres', version), (l) => lines.push(l))).toBe(major);
  expect(lines).toEqual([`orders-db runs PostgreSQL ${version} (EngineVersion, from DescribeDBInstances): the client is PostgreSQL ${major} (package postgresql${major})`]);
});

test.each([
  ['14.12', /runs PostgreSQL 14\.12 \(EngineVersion\); accepted: PostgreSQL 15 to 18.*Upgrade the instance\. Nothing was installed, created or changed\.$/],
  ['19.0', /runs PostgreSQL 19\.0 \(EngineVersion\); accepted: PostgreSQL 15 to 18.*Use a cdk-rds-pitr release that supports it\./],
])('EngineVersion %s is refused', async (version, message) => {
  await expect(chooseClientMajor(env, rdsAnswering('postgres', version), () => undefined)).rejects.toThrow(message);
});

test('another engine is refused', async () => {
  await expect(chooseClientMajor(env, rdsAnswering('mysql', '8.0.36'), () => undefined))
    .rejects.toThrow(/instance "orders-db" runs engine "mysql" 8\.0\.36; accepted: RDS for PostgreSQL \(engine "postgres"\), PostgreSQL 15 to 18/);
});

test('PG_CLIENT_VERSION equal to the major passes; another is refused naming both', async () => {
  const pinned = { ...env, [PROJECT_ENV.PG_CLIENT_VERSION]: '16' };
  expect(await chooseClientMajor(pinned, rdsAnswering('postgres', '16.4'), () => undefined)).toBe(16);
  await expect(chooseClientMajor(pinned, rdsAnswering('postgres', '17.2'), () => undefined))
    .rejects.toThrow(/PG_CLIENT_VERSION \(the deprecated `postgresClientVersion` prop\) is "16", but instance "orders-db" runs PostgreSQL 17\.2, and the client must be the server's major \(17\)/);
});

test('DescribeDBInstances failing, or no instance id, is refused saying what the build needs', async () => {
  const failing = { describeSource: async () => { throw new Error('SOURCE_INSTANCE_ID: connect ETIMEDOUT 10.0.0.5:443. Nothing was created.'); } };
  await expect(chooseClientMajor(env, failing, () => undefined))
    .rejects.toThrow(/DescribeDBInstances on "orders-db" failed: SOURCE_INSTANCE_ID: connect ETIMEDOUT 10\.0\.0\.5:443 \(the build needs the rds endpoint: NAT or an rds interface endpoint\)\. Nothing was installed/);
  await expect(chooseClientMajor({}, failing, () => undefined))
    .rejects.toThrow(/^SOURCE_INSTANCE_ID and SOURCE_CLUSTER_ID: neither is set; accepted: exactly one of .*Nothing was installed, created or changed\.$/);
});

test('the command prints the major alone on stdout, the reason on stderr, and exits 1 on a refusal', async () => {
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => err.push(t) };
  expect(await runClientMajor(env, rdsAnswering('postgres', '17.2'), io)).toBe(0);
  expect(out).toEqual(['17\n']);
  expect(err.join('')).toMatch(/^\[install\] orders-db runs PostgreSQL 17\.2/);
  out.length = 0;
  err.length = 0;
  expect(await runClientMajor(env, rdsAnswering('postgres', '13.9'), io)).toBe(1);
  expect(out).toEqual([]);
  expect(err.join('')).toMatch(/^\[install\] FAILED: instance "orders-db" runs PostgreSQL 13\.9/);
});
