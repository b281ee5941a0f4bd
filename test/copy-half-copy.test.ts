/**
 * `runner.js copy` after a killed copy (issue #19.4): the killed run leaves
 * its in-progress `<db>__pitr_<stamp>` on the target. The next copy of the
 * same database cannot tell whether that run is dead, so it does not drop
 * it, but it names it with its size and age and gives the DROP DATABASE to
 * run. Production route: the copy on 127.0.0.2, TLS verify-full, the bundled
 * runner in a child process. Needs `npx projen bundle`.
 */
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MASTER, databasesLike, masterUri, startSourceAndTarget } from './pg-test-env';
import { makeWorkDir, quoteIdent, sleep, type LocalCluster } from '../local/cluster';

const RUNNER = join(__dirname, '..', 'assets', 'runner', 'runner.js');
const DB = 'ledger';
let source: LocalCluster;
let target: LocalCluster;
let workDir: string;

beforeAll(async () => {
  if (!existsSync(RUNNER)) throw new Error(`${RUNNER} is missing; run \`npx projen bundle\` first.`);
  [source, target] = await startSourceAndTarget();
  workDir = await makeWorkDir('pitr-half-copy-');
  await source.sql(`CREATE DATABASE ${DB} OWNER ${MASTER.username}`);
  // Every row's CHECK sleeps 20 ms: the restore of 400 rows lasts about 8 s, long enough to kill it halfway.
  await source.sql(`SET ROLE ${MASTER.username};
    CREATE FUNCTION slow_ok(int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN PERFORM pg_sleep(0.02); RETURN true; END $$;
    CREATE TABLE entries (id int PRIMARY KEY CHECK (slow_ok(id)), body text);
    INSERT INTO entries SELECT g, repeat('x', 100) FROM generate_series(1, 400) g;`, DB);
  await target.sql(`CREATE DATABASE ${DB} OWNER ${MASTER.username}`);
});

afterAll(async () => {
  await Promise.all([source?.destroy(), target?.destroy()]);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

interface CopyRun {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>;
  readonly kill: () => void;
}

function copy(onLine?: (output: string) => void): CopyRun {
  const child = spawn(process.execPath, [RUNNER, 'copy', '--source', masterUri(source), '--target', masterUri(target), '--database', DB, '--jobs', '2',
    // The test's own environment (jest's copy, with PG_BIN_DIR set for PG_MAJOR), not the jest process's.
    '--work-dir', workDir], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
  let output = '';
  const collect = (chunk: Buffer): void => {
    output += chunk.toString();
    onLine?.(output);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  return {
    exited: new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, output }))),
    kill: () => child.kill('SIGKILL'),
  };
}

test('after a killed copy, the next copy names the half-copy it left (size, age, DROP DATABASE) and leaves it alone', async () => {
  let killed = false;
  const first = copy((output) => {
    if (!killed && /copy data/.test(output)) {
      killed = true;
      setTimeout(() => first.kill(), 1_000);
    }
  });
  const firstRun = await first.exited;
  // On a failure the copy's own output says why (it should have been killed halfway, not ended).
  expect({ signal: firstRun.signal, output: firstRun.signal === 'SIGKILL' ? '' : firstRun.output }).toEqual({ signal: 'SIGKILL', output: '' });
  const [half] = await databasesLike(target, `${DB}\\_\\_pitr\\_%`);
  expect(half).toMatch(/^ledger__pitr_\d{14}$/);
  // The watchdog ends the killed run's children within a second.
  await sleep(1_500);

  const second = await copy().exited;
  expect(second.code).toBe(0);
  expect(second.output).toMatch(new RegExp(`an earlier copy's in-progress database "${half}" is on the target \\(\\d+\\.\\d MiB, started [^)]+ ago, \\d+ session\\(s\\) connected\\): `
    + 'a copy that was killed or is still running\\. copy cannot tell which, so it leaves it alone; it takes room on the target\\. '
    + `Once you know that run is over: DROP DATABASE "${half}";`));
  expect(second.output).toContain('copy OK: 1 database(s)');
  // Not dropped: it is still there, beside the kept pre-recovery database of the second copy.
  expect(await databasesLike(target, `${DB}\\_\\_pitr\\_%`)).toEqual([half]);
  expect(await databasesLike(target, `${DB}\\_\\_before\\_pitr\\_%`)).toHaveLength(1);
  expect(await target.sql('SELECT count(*) FROM entries', DB)).toBe('400');

  // The statement it gives works as given, once the killed run's last session is gone (its server process notices the dead client
  // only between rows, and each row here takes 20 ms).
  for (let i = 0; i < 100 && await target.sql(`SELECT count(*) FROM pg_stat_activity WHERE datname = '${half}'`) !== '0'; i++) await sleep(200);
  await target.sql(`DROP DATABASE ${quoteIdent(half)}`);
  expect(await databasesLike(target, `${DB}\\_\\_pitr\\_%`)).toEqual([]);
});
