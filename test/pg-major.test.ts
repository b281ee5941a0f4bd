/**
 * The PostgreSQL major axis of the local harness (#18): PG_MAJOR picks the
 * server binaries and, unless PG_BIN_DIR is set, the client; `--pg` does the
 * same for the rehearsal and the bench. The last test starts a real cluster
 * of the selected major (run it with PG_MAJOR=17 or 18 after
 * `PG_MAJORS=15,17,18 bash scripts/setup.sh`).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster, pgBin } from '../local/cluster';
import { majorBinDir, parsePgMajor, pgMajor, usePgMajor } from '../local/pg-major';
import { parseRehearseArgs } from '../local/rehearse';

describe('PG_MAJOR and --pg', () => {
  test('15 (the default), 17 and 18 are accepted; anything else is refused, naming the variable, the value and what is accepted', () => {
    expect(pgMajor({})).toBe('15');
    expect(pgMajor({ PG_MAJOR: '' })).toBe('15');
    expect(pgMajor({ PG_MAJOR: '17' })).toBe('17');
    expect(parsePgMajor('18')).toBe('18');
    expect(() => pgMajor({ PG_MAJOR: '16' })).toThrow('PG_MAJOR="16" is not a PostgreSQL major the local harness runs; accepted: 15, 17, 18 (default 15).');
    expect(() => parsePgMajor('17.2', '--pg')).toThrow(/^--pg="17.2" is not a PostgreSQL major/);
  });

  test('a major that is not installed is refused with the command that installs it', () => {
    const empty = mkdtempSync(join(tmpdir(), 'pg-cache-'));
    try {
      expect(() => majorBinDir('18', { PG_CACHE_DIR: empty })).toThrow(
        `PostgreSQL 18 (PG_MAJOR=18) is not installed: ${empty}/pg18/bin/postgres is missing. Install it with: PG_MAJORS=18 bash scripts/setup.sh`);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  test('rehearse --pg: parsed and checked before anything starts', () => {
    expect(parseRehearseArgs(['--pg', '17'])).toMatchObject({ pgMajor: '17' });
    expect(parseRehearseArgs([]).pgMajor).toBeUndefined();
    expect(() => parseRehearseArgs(['--pg', '14'])).toThrow(/--pg="14" is not a PostgreSQL major the local harness runs; accepted: 15, 17, 18/);
    expect(() => parseRehearseArgs(['--pg'])).toThrow(/--pg: a value is required/);
  });

  test('usePgMajor points the client (PG_BIN_DIR) at the major, but never overrides a PG_BIN_DIR the user set', () => {
    const saved = { PG_MAJOR: process.env.PG_MAJOR, PG_BIN_DIR: process.env.PG_BIN_DIR };
    try {
      delete process.env.PG_BIN_DIR;
      expect(usePgMajor('15')).toBe('15');
      expect(process.env.PG_BIN_DIR).toBe('/usr/lib/postgresql/15/bin');
      process.env.PG_BIN_DIR = '/opt/my-client/bin';
      expect(usePgMajor('15')).toBe('15');
      expect(process.env.PG_BIN_DIR).toBe('/opt/my-client/bin');
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});

test('the cluster and the client are of PG_MAJOR (default 15)', async () => {
  const major = pgMajor();
  const cluster = await LocalCluster.create();
  try {
    expect(await cluster.sql("SELECT current_setting('server_version_num')::int / 10000")).toBe(major);
    expect(execFileSync(pgBin('pg_dump'), ['--version']).toString()).toMatch(new RegExp(`^pg_dump \\(PostgreSQL\\) ${major}\\.`));
  } finally {
    await cluster.destroy();
  }
}, 120_000);
