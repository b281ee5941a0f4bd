/**
 * `npx projen rehearse --changes` (issue #21 item 6), on the plain
 * rehearsal's route: the bundled runner's `recover` against the RDS stand-in
 * and moto, the point-in-time copy on another host, TLS verify-full.
 *
 * Known numbers of the built-in scenario (local/rehearse-changes.ts):
 * - shop.customers at T: 1000 seeded + 1001, 1002 = 1002 rows; after T 3
 *   inserted (2001-2003), 5 changed (10-14), 1 deleted (7): 1004 rows after
 *   the replay;
 * - shop.orders at T: 1..9998 seeded (9999, 10000 deleted before T) + 10001,
 *   10002 = 10000 rows; the bad change zeroes the 3333 paid ones (ids 1, 4,
 *   ..., 9997); then 6 inserted (20001-20006), 4 'new' ones shipped (3, 9, 12,
 *   15), customer 7's 10 orders deleted (6, 1006, ..., 9006, three of them
 *   zeroed by the bad change): 6 inserted, 3333 - 3 + 4 = 3334 changed, 10
 *   deleted since T; 9996 rows after the replay.
 * Needs `npx projen bundle` (the README's line runs it).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { shellCommands } from './readme-blocks';
import { pgBin } from '../local/cluster';
import type { SqlRunner } from '../local/fingerprint';
import { REHEARSE_EXIT, parseRehearseArgs, rehearse } from '../local/rehearse';
import { checkReplayResult } from '../local/rehearse-changes';

const execFileAsync = promisify(execFile);
const ROOT = join(__dirname, '..');
const REHEARSAL = join(ROOT, 'assets', 'rehearsal', 'rehearse.js');
const RUNNER = join(ROOT, 'assets', 'runner', 'runner.js');

/** A command line as a user types it: through the system shell, in the repository. */
function shell(line: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', line], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** A superuser connection to the cluster a `--keep` run left running, by libpq URI. */
function psqlAt(baseUri: string): SqlRunner {
  return {
    async sql(sql: string, database = 'postgres') {
      const uri = baseUri.replace(/\/[^/]*$/, `/${encodeURIComponent(database)}`);
      const { stdout } = await execFileAsync(pgBin('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', '-d', uri, '-c', sql], { maxBuffer: 64 * 1024 * 1024 });
      return stdout.trim();
    },
  };
}

/** Where each part of the scenario starts in the log: they must come in this order. */
const PARTS = [
  '> Rehearsal: good writes before T',
  '  T = ',
  '> Rehearsal: the bad change, after T',
  '> Rehearsal: good writes after the bad change',
  '---- the recovery to T, as on AWS',
  '> Record writes made after the restore time',
  '> Rehearsal: read the record, count the writes independently',
  '> Rehearsal: fetch the stored replay SQL and run it as the master user',
  '> Rehearsal: compare "orders" with changes_expected',
  'REHEARSAL PASSED',
];

test('the README\'s command line: the record has the known counts, the replay bounded by AFTER brings back exactly the good writes made after the bad change, in order', async () => {
  const commands = shellCommands().filter((c) => c.section === 'Writes made after the restore time' && c.text.startsWith('npx projen rehearse'));
  expect(commands.map((c) => c.text)).toEqual(['npx projen rehearse --changes']);
  const run = await shell(commands[0].text);
  const out = run.output;
  expect(out).toContain(`as on CodeBuild: node ${RUNNER} recover, through the AWS SDK`);
  expect(out).toMatch(/temporary instance rehearsal-db-pitr-\d{14} is available at 127\.0\.0\.2:\d+/);
  expect(out).toContain('TLS verify-full against a throwaway CA');
  expect(out).toContain('track_commit_timestamp = on');
  const at = PARTS.map((part) => out.indexOf(part));
  expect(at.every((i) => i >= 0)).toBe(true);
  expect([...at].sort((a, b) => a - b)).toEqual(at);

  const bad = /the bad change zeroed 3333 paid orders; it committed at (\S+) \(pg_xact_commit_timestamp/.exec(out);
  expect(bad).not.toBeNull();
  // The runner's own counts, as it printed them, and where the rows and the replay SQL are.
  expect(out).toContain('shop.customers: since T 3 inserted, 5 changed, 1 deleted (rows paired by "id"; ');
  expect(out).toContain('shop.orders: since T 6 inserted, 3334 changed, 10 deleted (rows paired by "id"; ');
  const stamp = /rows kept in schema "pitr_(\d{14})_after" of "orders"/.exec(out)![1];
  expect(out).toContain(`shop.orders: 6 inserted, 3334 changed, 10 deleted -> pitr_${stamp}_after.shop__orders`);
  expect(out).toContain(`replay SQL (never executed by the runner) stored in "pitr_${stamp}_after"."replay_sql"`);
  expect(out).toContain('each kept row carries its commit time (track_commit_timestamp is on)');
  expect(out).toContain('3330 committed by the bad change\'s time (left out by AFTER), 10 after it');
  // AFTER = the bad change's commit time in microseconds; the script's bound is the next millisecond, never an earlier one.
  const bound = /replay\.sql bounds itself \(from AFTER\): SET pitr\.after = '([^']+)';/.exec(out)![1];
  const commit = new Date(bad![1]).getTime();
  expect(new Date(bound).getTime()).toBeGreaterThanOrEqual(commit);
  expect(new Date(bound).getTime() - commit).toBeLessThanOrEqual(1);
  // psql's command tags: only the good writes were replayed, parents first for inserts, children first for deletes.
  expect(out).toMatch(/ BEGIN\n.* INSERT 0 3\n.* UPDATE 5\n.* INSERT 0 6\n.* UPDATE 4\n.* DELETE 10\n.* DELETE 1\n.* COMMIT\n/);
  expect(out).toContain('orders: identical to changes_expected');
  expect(out).toContain('the bad change is not back: no order has a total of 0');
  expect(out).toMatch(/REHEARSAL PASSED: recovered to T .*bounded by AFTER=/);
  expect(run.code).toBe(0);
}, 300_000);

test('by content, on the instance --keep leaves: the good writes are back, the bad change is not; a replay bounded before the bad change lets it back, and the check names it', async () => {
  if (!existsSync(REHEARSAL)) throw new Error(`${REHEARSAL} is missing; run \`npx projen bundle\` first.`);
  const lines: string[] = [];
  const code = await rehearse(parseRehearseArgs(['--changes', '--keep']), undefined, (l) => lines.push(l));
  const out = lines.join('\n');
  const stop = /stop and remove it: (.*)$/m.exec(out);
  try {
    expect(code).toBe(REHEARSE_EXIT.PASSED);
    const [, scheme, rest] = /instance rehearsal-db: (postgresql:\/\/)pitr_master(@127\.0\.0\.1:\d+\/postgres)/.exec(out)!;
    const kept = psqlAt(`${scheme}postgres${rest}`);
    const stamp = /rows kept in schema "pitr_(\d{14})_after" of "orders"/.exec(out)![1];
    const q = (sql: string): Promise<string> => kept.sql(sql, 'orders');
    // Not the bad change: every paid order from before T has its total at T.
    expect(await q('SELECT count(*) FROM shop.orders WHERE total = 0')).toBe('0');
    expect(await q("SELECT count(*) FROM shop.orders WHERE status = 'paid' AND id < 20000 AND total = (id % 997) + 0.99")).toBe('3330');
    // The good writes made after the bad change: inserts, updates, deletes, in both tables.
    expect(await q("SELECT string_agg(id || ':' || coalesce(email, '-'), ',' ORDER BY id) FROM shop.customers WHERE id > 2000")).toBe('2001:c2001@example.com,2002:c2002@example.com,2003:-');
    expect(await q("SELECT string_agg(id::text, ',' ORDER BY id) FROM shop.orders WHERE id > 20000")).toBe('20001,20002,20003,20004,20005,20006');
    expect(await q("SELECT count(*) FROM shop.customers WHERE id BETWEEN 10 AND 14 AND email LIKE 'moved-c%'")).toBe('5');
    expect(await q("SELECT string_agg(id::text, ',' ORDER BY id) FROM shop.orders WHERE status = 'shipped' AND id IN (3, 9, 12, 15)")).toBe('3,9,12,15');
    expect(await q('SELECT (SELECT count(*) FROM shop.customers WHERE id = 7) || \'/\' || (SELECT count(*) FROM shop.orders WHERE customer_id = 7)')).toBe('0/0');
    expect(await q('SELECT (SELECT count(*) FROM shop.customers) || \'/\' || (SELECT count(*) FROM shop.orders)')).toBe('1004/9996');
    expect(await checkReplayResult(kept, 'orders', stamp)).toEqual([]);

    // The same stored replay, bounded at T instead of after the bad change: the bad change's rows, still as at T, are zeroed again.
    const t = /T = (\S+); databases at T/.exec(out)![1];
    const script = await q(`SELECT sql FROM "pitr_${stamp}_after".replay_sql`);
    await q(`SET ROLE pitr_master; ${script.replace(/^SET pitr\.after = .*$/m, `SET pitr.after = '${t}';`)}`);
    expect(await q('SELECT count(*) FROM shop.orders WHERE total = 0')).toBe('3330');
    const problems = await checkReplayResult(kept, 'orders', stamp);
    expect(problems).toContainEqual('the bad change was replayed: 3330 orders have a total of 0 again');
    expect(problems.join('\n')).toMatch(/orders differs from changes_expected:\n {4}- expected, not there: rows shop\.orders 9996 /);
  } finally {
    if (stop) await execFileAsync('sh', ['-c', stop[1]]);
  }
}, 300_000);

test('AFTER at T instead of after the bad change: the rehearsal fails loudly (exit 2) naming the replayed bad change', async () => {
  const lines: string[] = [];
  const code = await rehearse({ ...parseRehearseArgs(['--changes']), changesAfterOverride: ({ restoreTime }) => restoreTime.toISOString() },
    undefined, (l) => lines.push(l));
  const out = lines.join('\n');
  expect(out).toContain('UPDATE 3334');
  expect(out).toMatch(/REHEARSAL FAILED: after the replay, "orders" is not T's state plus exactly the good writes made after the bad change:\n/);
  expect(out).toContain('the bad change was replayed: 3330 orders have a total of 0 again');
  expect(code).toBe(REHEARSE_EXIT.MISMATCH);
}, 300_000);

test('--changes is refused with options it does not take, before anything starts', () => {
  for (const args of [['--changes', '--drill'], ['--changes', '--tables', 'shop.orders'], ['--changes', '--strategy', 'replace']]) {
    expect(() => parseRehearseArgs(args)).toThrow(/^--changes: rehearses the record of writes made after T on its own dataset, after a swap recovery; accepted alone .* not with --/);
  }
  expect(parseRehearseArgs(['--changes', '--adapter', 'local', '--one-host'])).toMatchObject({ changes: true, adapter: 'local', oneHost: true });
});
