/**
 * The bench's own instruments, on real processes and a real PostgreSQL
 * cluster. Nothing here is about speed: it checks that the bench measures
 * what it says it measures, and refuses what it cannot run.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import {
  BENCH_DB, generateDatabase, largestShare, SKEWED_LARGEST, SKEWED_SMALL_TABLES, sourceHost, sourceTables, startCluster,
  tableBytes, tableFingerprints, userObjects,
} from '../bench/dataset';
import { childrenCpuMs, runMeasured, serverCpuMs, ServerLogTap, WriteProbe } from '../bench/measure';
import { NAMED_SCALES, parseBenchOptions, UsageError } from '../bench/options';
import { findPgcopydb, pgcopydbDurationMs, pgcopydbSteps, runnerStepDurations, runnerUnavailableMs, runnerVerified, runPathC } from '../bench/paths';
import { spread, verdictLine, type PathSummary, type Summary } from '../bench/report';
import { LocalCluster, LOOPBACK, makeWorkDir, pgBin, quoteIdent } from '../local/cluster';

describe('bench flags', () => {
  test('defaults: the ~1 GB default dataset, one host, 3 runs, -j = cores', () => {
    const options = parseBenchOptions([], 2);
    expect(options).toEqual({ scaleName: 'default', size: NAMED_SCALES.default, dataset: 'default', route: 'one-host', runs: 3, jobs: 2, save: false, keep: false });
  });

  test('named and numeric scales, datasets, routes, --flag=value and --flag value', () => {
    expect(parseBenchOptions(['--scale', 'smoke', '--runs=1', '--jobs', '4', '--save'], 2)).toMatchObject({ scaleName: 'smoke', size: NAMED_SCALES.smoke, runs: 1, jobs: 4, save: true });
    expect(parseBenchOptions(['--scale=7'], 2).size).toEqual({ pgbenchScale: 7, extraRows: 7 * 30_000, skewedRows: 7 * 125_000 });
    expect(parseBenchOptions(['--dataset', 'skewed', '--route=two-hosts'], 2)).toMatchObject({ dataset: 'skewed', route: 'two-hosts' });
    expect(parseBenchOptions(['--stream-min-bytes', '0'], 2).streamMinBytes).toBe('0');
    expect(parseBenchOptions(['--stream-min-bytes=never'], 2).streamMinBytes).toBe('never');
    expect(parseBenchOptions(['--pg', '17'], 2).pgMajor).toBe('17');
    expect(parseBenchOptions(['--pg=18'], 2).pgMajor).toBe('18');
    // The full-size skewed dataset is the issue's: about 2.5M rows in the largest table.
    expect(NAMED_SCALES.default.skewedRows).toBe(2_500_000);
  });

  test.each([
    [['--scale', 'huge'], /--scale "huge" is not accepted; use smoke, default, or an integer from 1 to 1000/],
    [['--runs', '0'], /--runs "0" is not accepted; use an integer from 1 to 50/],
    [['--jobs', '2.5'], /--jobs "2.5" is not accepted/],
    [['--runs'], /--runs needs a value/],
    [['--dataset', 'huge'], /--dataset "huge" is not accepted; use default or skewed\. Nothing was started/],
    [['--dataset=Skewed'], /--dataset "Skewed" is not accepted; use default or skewed/],
    [['--route', 'lan'], /--route "lan" is not accepted; use one-host or two-hosts\. Nothing was started/],
    [['--route'], /--route needs a value/],
    [['--fast'], /unknown argument "--fast"/],
    [['--pg', '16'], /--pg "16" is not accepted; use 15, 17, 18\. Nothing was started/],
    [['--stream-min-bytes', '16MB'], /--stream-min-bytes "16MB" is not accepted; use a whole number of bytes \(0 streams every table\) or never/],
  ])('refuses %j, naming the flag, the value and what is accepted', (argv, message) => {
    expect(() => parseBenchOptions(argv, 2)).toThrow(UsageError);
    expect(() => parseBenchOptions(argv, 2)).toThrow(message);
  });
});

describe('bench report', () => {
  test('median, min and max', () => {
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3 });
    expect(spread([4, 1, 2, 3])).toEqual({ median: 2.5, min: 1, max: 4 });
  });

  test('the verdict line with C, and no speedup claimed for a path that failed or was skipped', () => {
    const c = { succeeded: true } as PathSummary;
    const summary = { speedupAOverB: 2.345, speedupCOverB: 0.754, unavailableAS: 38.2, unavailableBS: 0.234, bSucceeded: true, c } as Summary;
    expect(verdictLine(summary, false)).toBe('speedup A/B = 2.35, C/B = 0.75, unavailable window A = 38.20 s, B = 0.23 s');
    expect(verdictLine({ ...summary, c: undefined, speedupCOverB: undefined }, true)).toBe('speedup A/B = 2.35, C/B = n/a (C skipped: pgcopydb not installed), unavailable window A = 38.20 s, B = 0.23 s');
    expect(verdictLine({ ...summary, c: { succeeded: false } as PathSummary }, false)).toBe('speedup A/B = 2.35, C/B = n/a (C failed), unavailable window A = 38.20 s, B = 0.23 s');
    expect(verdictLine({ ...summary, bSucceeded: false }, false)).toBe('speedup A/B = n/a (B failed), C/B = n/a (B failed), unavailable window A = 38.20 s, B = n/a');
  });

  test("reads pgcopydb's closing summary, in each of its duration formats", () => {
    expect([' 95ms', '1s234', '12s', ' 1m05s', ' 2h03m', 'soon'].map(pgcopydbDurationMs)).toEqual([95, 1234, 12_000, 65_000, 123 * 60_000, undefined]);
    const log = [
      '23:41:59 8818 INFO  STEP 10: restore the post-data section to the target database',
      '                                               Step   Connection    Duration   Concurrency',
      ' --------------------------------------------------   ----------  ----------  ------------',
      '                                        Dump Schema       source       148ms             1',
      '      COPY, INDEX, CONSTRAINTS, VACUUM (wall clock)         both       12s             2 + 4',
      '             CREATE INDEX, CONSTRAINTS (cumulative)       target       1s417             2',
      '                          Total Wall Clock Duration         both       1m02s         2 + 4',
    ].join('\n');
    expect(pgcopydbSteps(log)).toEqual({
      'pgcopydb: Dump Schema': 148,
      'pgcopydb: COPY, INDEX, CONSTRAINTS, VACUUM (wall clock)': 12_000,
      'pgcopydb: CREATE INDEX, CONSTRAINTS (cumulative)': 1417,
      'pgcopydb: Total Wall Clock Duration': 62_000,
    });
  });

  test('reads step durations and the unavailable window from the runner log format', () => {
    const log = [
      '2026-01-01T00:00:00.000Z > "bench": copy data',
      '2026-01-01T00:00:09.000Z < "bench": copy data: done in 9.25 s',
      '2026-01-01T00:00:09.100Z < "bench": swap in (block connections, end sessions, rename): done in 231 ms',
      '2026-01-01T00:00:09.200Z < "bench": verify "bench__pitr_20260101000000": done in 2 min 5 s',
      '2026-01-01T00:00:09.250Z   "bench": equal — 9 tables (8 with content checksums), 100 rows, 0 sequences, large objects 0, 11 object kinds',
      '2026-01-01T00:00:09.300Z   "bench": unavailable for 231 ms (swap); verified 9 tables, 100 rows',
    ].join('\n');
    expect(runnerStepDurations(log)).toEqual({
      '"bench": copy data': 9250,
      '"bench": swap in (block connections, end sessions, rename)': 231,
      '"bench": verify "bench__pitr_<stamp>"': 125_000,
    });
    expect(runnerUnavailableMs(log)).toBe(231);
    expect(runnerUnavailableMs('no such line')).toBeUndefined();
    expect(runnerVerified(log)).toEqual({ tables: 9, checksummed: 8 });
    expect(runnerVerified('  "bench": equal — 9 tables (120012 rows): row counts + content checksums; 1 sequences: values')).toEqual({ tables: 9, checksummed: 9 });
    expect(runnerVerified('no such line')).toBeUndefined();
  });
});

describe('bench instruments', () => {
  test('runMeasured records the exit code, stdin from a file, and the RSS of the whole process tree', async () => {
    // A child shell that starts a grandchild holding ~64 MiB: only a tree sum sees it.
    const run = await runMeasured('bash', ['-c', 'python3 -c "b = bytearray(64 * 2**20); import time; time.sleep(0.5)"; read line; echo "got $line"; exit 3'], { stdinFile: __filename });
    expect(run.exitCode).toBe(3);
    expect(run.stdout).toBe('got /**\n');
    expect(run.peakRssBytes).toBeGreaterThan(64 * 2 ** 20);
  });

  test('childrenCpuMs counts the CPU time of finished child processes', async () => {
    const before = childrenCpuMs();
    const run = await runMeasured('python3', ['-c', 'import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass']);
    expect(run.exitCode).toBe(0);
    expect(childrenCpuMs() - before).toBeGreaterThanOrEqual(300);
  });

  test('serverCpuMs counts a backend the postmaster reaps while the children are being read (the bench-smoke flake)', () => {
    // /proc as it changes under the reader: postmaster 100, with a backend 200 that has used 30 ticks (300 ms). The
    // backend is reaped (its ticks move to the postmaster's cutime, its /proc entry goes) right after the first read of
    // the postmaster's stat: a reader that trusts that first read counts the backend neither live nor reaped.
    const stat = (pid: number, ppid: number, [utime, stime, cutime, cstime]: number[]): string =>
      `${pid} (postgres: a b) S ${ppid} ${Array(9).fill(0).join(' ')} ${utime} ${stime} ${cutime} ${cstime} 20 0 1 0`;
    let postmasterReads = 0;
    let reaped = false;
    const proc = {
      read: (path: string): string | undefined => {
        if (path.endsWith('postmaster.pid')) return '100\n/data\n';
        if (path === '/proc/100/stat') {
          postmasterReads++;
          const text = stat(100, 1, [2, 1, reaped ? 35 : 10, reaped ? 5 : 0]);
          if (postmasterReads === 1) reaped = true;
          return text;
        }
        if (path === '/proc/200/stat') return reaped ? undefined : stat(200, 100, [25, 5, 0, 0]);
        if (path === '/proc/300/stat') return stat(300, 100, [1, 1, 0, 0]);
        return undefined;
      },
      pids: () => ['1', '100', '200', '300'],
    };
    // Before the backend started: postmaster 2+1+10, checkpointer 1+1 = 15 ticks; after: 15 + the backend's 30 = 45.
    expect(serverCpuMs('/data', proc)).toBe(450);
  });

  test('findPgcopydb looks along the given PATH only', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-path-'));
    try {
      expect(findPgcopydb(`/nonexistent${':'}${dir}`)).toBeUndefined();
      writeFileSync(join(dir, 'pgcopydb'), '#!/bin/sh\n');
      chmodSync(join(dir, 'pgcopydb'), 0o644);
      expect(findPgcopydb(dir)).toBeUndefined(); // not executable
      chmodSync(join(dir, 'pgcopydb'), 0o755);
      expect(findPgcopydb(`/nonexistent:${dir}`)).toBe(join(dir, 'pgcopydb'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('write probe on real PostgreSQL', () => {
    let cluster: LocalCluster;
    beforeAll(async () => {
      cluster = await LocalCluster.create();
      await cluster.sql('CREATE TABLE probe (at timestamptz NOT NULL DEFAULT clock_timestamp(), source text NOT NULL)');
    });
    afterAll(async () => {
      await cluster?.destroy();
    });

    test('a table locked for 800 ms shows up as a write gap of at least 800 ms, and the writes land', async () => {
      const probe = new WriteProbe(cluster.uri(), 'probe');
      probe.start();
      await new Promise((resolve) => setTimeout(resolve, 200));
      await cluster.sql('BEGIN; LOCK TABLE probe IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(0.8); COMMIT;');
      await new Promise((resolve) => setTimeout(resolve, 200));
      const result = await probe.stop();
      expect(result.longestGapMs).toBeGreaterThanOrEqual(800);
      expect(result.recovered).toBe(true);
      expect(result.failures).toBe(0);
      expect(Number(await cluster.sql("SELECT count(*) FROM probe WHERE source = 'probe'"))).toBe(result.writes);
    });

    test('a missing table counts as failed writes and an open gap until the end', async () => {
      const probe = new WriteProbe(cluster.uri(), 'no_such_table');
      probe.start();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const result = await probe.stop();
      expect(result.writes).toBe(0);
      expect(result.failures).toBeGreaterThan(0);
      expect(result.recovered).toBe(false);
      expect(result.firstError).toMatch(/no_such_table/);
      expect(result.longestGapMs).toBeGreaterThanOrEqual(300);
    });
  });
});

describe('bench datasets, route, instruments and C on real PostgreSQL (smoke size)', () => {
  // The clusters of the two-hosts route: the source on 127.0.0.2 only, the target on 127.0.0.1 only.
  let source: LocalCluster;
  let target: LocalCluster;
  beforeAll(async () => {
    [source, target] = await Promise.all([startCluster(sourceHost('two-hosts')), startCluster(sourceHost('one-host'))]);
    await generateDatabase(source, 'skewed', NAMED_SCALES.smoke);
  });
  afterAll(async () => {
    await Promise.all([source?.destroy(), target?.destroy()]);
  });

  const psqlVia = (cluster: LocalCluster, host: string, sql: string): string =>
    execFileSync(pgBin('psql'), ['-X', '-At', '-d', `postgresql://postgres@${host}:${cluster.port}/postgres`, '-c', sql], {
      env: { ...process.env, PGCONNECT_TIMEOUT: '3' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }).toString().trim();

  test('two-hosts route: the source answers on 127.0.0.2 only, the target on 127.0.0.1 only, so no client can reach both as one host', () => {
    expect(sourceHost('two-hosts')).toBe('127.0.0.2');
    expect(source.uri()).toContain('@127.0.0.2:');
    expect(psqlVia(source, '127.0.0.2', 'SELECT host(inet_server_addr())')).toBe('127.0.0.2');
    expect(() => psqlVia(source, LOOPBACK, 'SELECT 1')).toThrow();
    expect(psqlVia(target, LOOPBACK, 'SELECT host(inet_server_addr())')).toBe(LOOPBACK);
    expect(() => psqlVia(target, '127.0.0.2', 'SELECT 1')).toThrow();
  });

  test('skewed dataset: one table holds at least 70% of the bytes, with a primary key and 3 secondary indexes, one on two text columns; 20 small tables', async () => {
    const tables = await tableBytes(source, BENCH_DB);
    expect(tables[0].table).toBe(`public.${SKEWED_LARGEST}`);
    expect(largestShare(tables)).toBeGreaterThanOrEqual(0.7);
    // Of the database as a whole too, catalog included, once past smoke size; at smoke size the catalog's ~7 MiB weighs in.
    expect(tables[0].bytes / Number(await source.sql(`SELECT pg_database_size('${BENCH_DB}')`))).toBeGreaterThan(0.5);
    expect(tables.slice(1).map((t) => t.table).sort()).toEqual(SKEWED_SMALL_TABLES.map((t) => `public.${t}`).sort());
    expect(Number(await source.sql(`SELECT count(*) FROM ${SKEWED_LARGEST}`, BENCH_DB))).toBe(NAMED_SCALES.smoke.skewedRows);
    const indexes = (await source.sql(`
      SELECT i.indisprimary, i.indisunique, i.indnatts, string_agg(format_type(a.atttypid, a.atttypmod), ',' ORDER BY k.n)
        FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
       WHERE i.indrelid = '${SKEWED_LARGEST}'::regclass GROUP BY i.indexrelid, i.indisprimary, i.indisunique, i.indnatts ORDER BY 1 DESC, 4`, BENCH_DB)).split('\n');
    expect(indexes).toHaveLength(4);
    expect(indexes[0]).toBe('t|t|1|bigint');
    expect(indexes.slice(1)).toContain('f|f|2|text,text');
  });

  test('the content check: equal copies agree, and one changed value is caught even with every row count equal', async () => {
    const tables = await sourceTables(source);
    await source.sql(`CREATE DATABASE bench_check TEMPLATE ${quoteIdent(BENCH_DB)}`);
    try {
      const original = await tableFingerprints(source, BENCH_DB, tables);
      expect(await tableFingerprints(source, 'bench_check', tables)).toEqual(original);
      await source.sql(`UPDATE ${SKEWED_SMALL_TABLES[3]} SET label = label || '!' WHERE id = 7`, 'bench_check');
      const changed = await tableFingerprints(source, 'bench_check', tables);
      const differing = tables.filter((t) => changed.get(t)?.hashSum !== original.get(t)?.hashSum);
      expect(differing).toEqual([`public.${SKEWED_SMALL_TABLES[3]}`]);
      expect(tables.filter((t) => changed.get(t)?.rows !== original.get(t)?.rows)).toEqual([]);
    } finally {
      await source.sql('DROP DATABASE bench_check');
    }
  });

  test('the instruments: a slow statement is read back from the server log, by protocol, with its duration; the server\'s CPU time grows', async () => {
    const tap = new ServerLogTap('source', join(source.baseDir, 'server.log'));
    tap.mark();
    await source.sql('SELECT pg_sleep(0.15)');
    // The server's CPU time is read as soon as each backend has ended, while the postmaster reaps it: the moment the
    // bench reads it after every path. A reading that lost the backend in between (neither live nor reaped) showed
    // 10-20 ms here in about 1 of 3 tries; five tries in a row catch that.
    const readings: number[] = [];
    for (let attempt = 1; attempt <= 5; attempt++) {
      const cpuBefore = serverCpuMs(source.dataDir);
      const client = new Client({ connectionString: source.uri(), application_name: 'bench-test' });
      await client.connect();
      try {
        await client.query('SELECT count(*) FROM generate_series(1, $1::int)', [3_000_000]);
      } finally {
        await client.end();
      }
      readings.push(serverCpuMs(source.dataDir) - cpuBefore);
    }
    // Each try's count(*) costs the backend about 300 ms of CPU here.
    expect(readings.filter((ms) => ms < 100)).toEqual([]);
    const statements = tap.statements();
    expect(statements.find((st) => st.text === 'SELECT pg_sleep(0.15)')).toMatchObject({ cluster: 'source', application: 'psql', database: 'postgres' });
    expect(statements.find((st) => st.text === 'SELECT pg_sleep(0.15)')!.durationMs).toBeGreaterThanOrEqual(150);
    expect(statements.find((st) => st.application === 'bench-test')?.text).toBe('SELECT count(*) FROM generate_series(1, $1::int)');
  });

  const pgcopydb = findPgcopydb();
  (pgcopydb ? test : test.skip)('C: pgcopydb clones the skewed dataset over the two-hosts route into a fresh database equal to the source', async () => {
    const workDir = await makeWorkDir('bench-c-');
    try {
      const run = await runPathC({ source, target, workDir }, pgcopydb!, 2, 'bench_pgcopydb');
      expect(run.failures).toEqual([]);
      expect(run.database).toBe('bench_pgcopydb');
      expect(run.phases['pgcopydb: Total Wall Clock Duration']).toBeGreaterThan(0);
      const tables = await sourceTables(source);
      expect(await tableFingerprints(target, 'bench_pgcopydb', tables)).toEqual(await tableFingerprints(source, BENCH_DB, tables));
      expect(await userObjects(target, 'bench_pgcopydb')).toEqual(await userObjects(source, BENCH_DB));
    } finally {
      rmSync(workDir, { recursive: true, force: true });
    }
  });
});
