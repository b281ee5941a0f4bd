/**
 * `npx projen rehearse --aurora` (issue #20): the rehearsal bundle in a child
 * process, with the original an Aurora PostgreSQL DB cluster in the RDS
 * stand-in. runner.js recover (what CodeBuild runs) restores a temporary
 * cluster, adds its writer, sets the master password on the cluster, copies
 * back, and deletes the writer and then the cluster; the rehearsal checks
 * every database against its fingerprint at T. Needs `npx projen bundle`.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseRehearseArgs } from '../local/rehearse';

const REHEARSAL = join(__dirname, '..', 'assets', 'rehearsal', 'rehearse.js');

/** Runs the rehearsal bundle to its end: exit code and every output line. */
function rehearse(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [REHEARSAL, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

beforeAll(() => {
  if (!existsSync(REHEARSAL)) throw new Error(`${REHEARSAL} is missing; run \`npx projen bundle\` first.`);
});

test('--aurora: a recovery of an Aurora cluster through a temporary cluster and its writer passes the check against T', async () => {
  const run = await rehearse(['--aurora']);

  expect(run.output).toMatch(/REHEARSAL PASSED: \d+ database\(s\) equal their state at T/);
  expect(run.code).toBe(0);
  expect(run.output).toMatch(/the original is the Aurora PostgreSQL DB cluster rehearsal-db \(SOURCE_CLUSTER_ID\)/);
  // The temporary cluster, its writer once the cluster was available, the password set on the cluster.
  expect(run.output).toMatch(/temporary cluster: rehearsal-db-pitr-(\d{14}) \(writer rehearsal-db-pitr-\1-w\)/);
  expect(run.output).toMatch(/temporary cluster rehearsal-db-pitr-\d{14} is available at 127\.0\.0\.2:\d+/);
  expect(run.output).toMatch(/the temporary instance refuses the current secret .*password authentication failed/);
  expect(run.output).toMatch(/master password reset on rehearsal-db-pitr-\d{14}/);
  // The safety snapshot is a DB cluster snapshot; the writer is deleted, then the cluster.
  expect(run.output).toMatch(/Safety snapshot of the original \(kept\): rehearsal-db-pre-pitr-\d{14}; .*delete-db-cluster-snapshot/);
  expect(run.output).toMatch(/deletion of its instance rehearsal-db-pitr-\d{14}-w requested[^]*deletion requested \(its writer first, then the cluster/);
  expect(run.output).toMatch(/orders: identical to T \(\d+ facts\)/);
  expect(run.output).toMatch(/orders__before_pitr_\d{14}: holds the pre-recovery data, post-T writes included/);
});

test('--aurora needs the AWS path: with --adapter local it is refused naming why', () => {
  expect(parseRehearseArgs(['--aurora']).aurora).toBe(true);
  expect(parseRehearseArgs([]).aurora).toBeUndefined();
  expect(() => parseRehearseArgs(['--aurora', '--adapter', 'local'])).toThrow(/--aurora: the local control plane \(--adapter local\) has no Aurora DB clusters; accepted with --adapter aws/);
});
