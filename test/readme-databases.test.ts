/**
 * README.md, the variables table: with DATABASES empty, a recovery (and a
 * drill) takes "every database that existed at the restore time and allows
 * connections, except templates and `rdsadmin`". Checked on a throwaway
 * RDS-like cluster with the data path's own database listing.
 */
import { masterTarget, startCluster } from './pg-test-env';
import { readReadme } from './readme-blocks';
import { PgDataPath } from '../buildspec/runner/postgres/data-path';
import type { LocalCluster } from '../local/cluster';

let cluster: LocalCluster;

beforeAll(async () => {
  cluster = await startCluster();
  await cluster.sql('CREATE DATABASE app');
  await cluster.sql('CREATE DATABASE closed');
  await cluster.sql('ALTER DATABASE closed WITH ALLOW_CONNECTIONS false');
  await cluster.sql('CREATE DATABASE rdsadmin');
});

afterAll(async () => {
  await cluster?.stop();
});

test('the README says which databases an empty DATABASES means', () => {
  expect(readReadme()).toContain('Default: every database that existed at the restore time and allows connections, except templates and `rdsadmin`.');
});

test('those are the databases the data path lists: not one that disallows connections, not a template, not rdsadmin', async () => {
  expect(await new PgDataPath().listDatabases(masterTarget(cluster))).toEqual(['app', 'postgres']);
});
