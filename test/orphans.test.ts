/**
 * No orphan writers (issue #13): a runner killed outright (SIGKILL, as when a
 * build's container ends) runs no handler of its own. Its pg_restore workers
 * must not go on writing into the original: within a few seconds no child of
 * it is left, no session of it remains on the original, and the half-made
 * copy stops growing. Production route: the copy on 127.0.0.2, TLS.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MASTER, databasesLike, masterUri, startSourceAndTarget } from './pg-test-env';
import { makeWorkDir, quoteIdent, sleep, type LocalCluster } from '../local/cluster';

const RUNNER = join(__dirname, '..', 'assets', 'runner', 'runner.js');
const DB = 'ledger';
let source: LocalCluster;
let target: LocalCluster;
let workDir: string;

/** Processes whose command line mentions `text` (pg_restore and pg_dump name the dump directory in theirs). */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(text)) found.push(`${pid}: ${cmdline.trim()}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

beforeAll(async () => {
  if (!existsSync(RUNNER)) throw new Error(`${RUNNER} is missing; run \`npx projen bundle\` first.`);
  [source, target] = await startSourceAndTarget();
  workDir = await makeWorkDir('pitr-orphans-');
  await source.sql(`CREATE DATABASE ${DB} OWNER ${MASTER.username}`);
  // Eight tables of about 14 MiB with two indexes each: below the streaming threshold, so they go through pg_restore -j 2
  // and its workers, for several seconds.
  await source.sql(`SET ROLE ${MASTER.username};
    ${[1, 2, 3, 4, 5, 6, 7, 8].map((n) => `CREATE TABLE entries_${n} AS SELECT g AS id, md5(g::text) || repeat('x', 60) AS body FROM generate_series(1, 100000) g;
      CREATE INDEX ON entries_${n} (body); CREATE INDEX ON entries_${n} (md5(body));`).join('\n')}`, DB);
  await target.sql(`CREATE DATABASE ${DB} OWNER ${MASTER.username}`);
});

afterAll(async () => {
  await Promise.all([source?.destroy(), target?.destroy()]);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

test('SIGKILL mid-restore: no child is left, no session stays on the original, and the half-copy stops growing', async () => {
  const child = spawn(process.execPath, [RUNNER, 'copy', '--source', masterUri(source), '--target', masterUri(target), '--database', DB, '--jobs', '2',
    '--work-dir', workDir], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
  let output = '';
  const restoring = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the copy never reached its restore step:\n${output}`)), 120_000);
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (/> "ledger": copy data, then indexes/.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  await restoring;
  expect(output).toMatch(/"ledger": [\d.]+ MiB, .* 0 table\(s\) streamed/);
  await sleep(300);
  // While it runs: pg_restore and its workers name the dump directory.
  expect(processesMentioning(workDir).length).toBeGreaterThanOrEqual(2);
  const [half] = await databasesLike(target, `${DB}\\_\\_pitr\\_%`);
  expect(half).toBeDefined();

  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');

  // The watchdog checks twice a second; the restore had several seconds to go.
  await sleep(1_500);
  expect(processesMentioning(workDir)).toEqual([]);
  expect(await target.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cdk-rds-pitr'")).toBe('0');
  const size = async (): Promise<string> => target.sql(`SELECT pg_database_size(${`'${half.replace(/'/g, "''")}'`})`);
  const before = await size();
  await sleep(1_000);
  expect(await size()).toBe(before);
  // The watchdog itself is gone too (other runners in parallel test files have their own).
  expect(processesMentioning(`pitr-watchdog ${child.pid} `)).toEqual([]);
  await target.sql(`DROP DATABASE ${quoteIdent(half)} WITH (FORCE)`);
});
