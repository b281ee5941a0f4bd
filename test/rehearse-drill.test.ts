/**
 * `npx projen rehearse --drill`, as a user runs it (the rehearsal bundle in a
 * child process, by default `runner.js recover` with MODE=drill against the
 * RDS stand-in and moto): the drill passes, prints its evidence record, and
 * the rehearsal's own check finds the original untouched. The argument rules
 * of --compare-recovery. Needs `npx projen bundle`.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseRehearseArgs } from '../local/rehearse';

const REHEARSAL = join(__dirname, '..', 'assets', 'rehearsal', 'rehearse.js');

function rehearse(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [REHEARSAL, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => void (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => void (output += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

beforeAll(() => {
  if (!existsSync(REHEARSAL)) throw new Error(`${REHEARSAL} is missing; run \`npx projen bundle\` first.`);
});

test('--drill: the drill runs through runner.js, prints one evidence record, publishes it, and the original is found untouched', async () => {
  const run = await rehearse(['--drill']);
  expect(run.output).toMatch(/REHEARSAL PASSED: the drill succeeded and the original is byte-for-byte untouched\./);
  expect(run.code).toBe(0);
  const evidence = run.output.split('\n').filter((l) => l.includes(' EVIDENCE '));
  expect(evidence).toHaveLength(1);
  const record = JSON.parse(evidence[0].slice(evidence[0].indexOf(' EVIDENCE ') + 10));
  expect(record).toMatchObject({ kind: 'cdk-rds-pitr/restore-drill', succeeded: true, source: { id: 'rehearsal-db', engine: 'postgres' }, restoreTime: { requested: 'latest' } });
  // The stand-in's source has 20 GiB: the drill asks for room for a second copy.
  expect(record.temporaryInstance.allocatedStorageGiB).toBe(21);
  expect(record.databases.map((d: { name: string; result: string }) => `${d.name}:${d.result}`).sort()).toEqual(['orders:verified', 'postgres:verified']);
  expect(record.recoveryTimeEstimate.seconds).toBeGreaterThan(0);
  // Published to moto's CloudWatch, EventBridge and SNS without a failure.
  expect(run.output).toMatch(/evidence published/);
  expect(run.output).not.toMatch(/could not be published/);
  // Copies were made on the temporary instance, never on the original; the check is the rehearsal's own.
  expect(run.output).toMatch(/create "orders__drill_\d{14}" on the temporary instance \(drill\)/);
  expect(run.output).toMatch(/the original is untouched: 2 databases \(\d+ facts.*write counters are as before; session \d+ is still alive/);
  expect(run.output).toMatch(/deletion requested \(no final snapshot, automated backups deleted; not waiting\)/);
}, 300_000);

test('--compare-recovery is accepted only with --drill', () => {
  expect(() => parseRehearseArgs(['--compare-recovery'])).toThrow(/--compare-recovery: compares a drill's estimate with a recovery; accepted only with --drill/);
  expect(parseRehearseArgs(['--drill', '--compare-recovery'])).toMatchObject({ drill: true, compareRecovery: true });
});
