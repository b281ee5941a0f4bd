/**
 * The PostgreSQL major the local clusters run (#18): `PG_MAJOR=15|17|18`,
 * default 15. The tests, the rehearsal (`--pg`) and the bench (`--pg`) start
 * their throwaway servers from that major's binaries, and the runner they
 * drive uses the same major's client (PG_BIN_DIR) unless PG_BIN_DIR is set,
 * which then picks the client alone (e.g. server 17, client 18).
 *
 * 15 is bookworm's package (/usr/lib/postgresql/15/bin); 17 and 18 are
 * installed by `PG_MAJORS=15,17,18 bash scripts/setup.sh` into
 * PG_CACHE_DIR (default /var/cache/cdk-rds-pitr)/pg<major>/bin.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pgBinDir } from '../buildspec/runner/postgres/binaries';

/** The majors the local harness can run. */
export const PG_MAJORS = ['15', '17', '18'] as const;
export type PgMajor = typeof PG_MAJORS[number];
export const DEFAULT_PG_MAJOR: PgMajor = '15';
export const DEFAULT_PG_CACHE_DIR = '/var/cache/cdk-rds-pitr';

/** Checks a major given as PG_MAJOR or `--pg`; `what` names where it came from in the error. */
export function parsePgMajor(value: string, what = 'PG_MAJOR'): PgMajor {
  if ((PG_MAJORS as readonly string[]).includes(value)) return value as PgMajor;
  throw new Error(`${what}=${JSON.stringify(value)} is not a PostgreSQL major the local harness runs; accepted: ${PG_MAJORS.join(', ')} (default ${DEFAULT_PG_MAJOR}).`);
}

/** PG_MAJOR, checked; the default when unset or empty. */
export function pgMajor(env: NodeJS.ProcessEnv = process.env): PgMajor {
  return env.PG_MAJOR ? parsePgMajor(env.PG_MAJOR) : DEFAULT_PG_MAJOR;
}

/** Directory of `major`'s server and client binaries; an error saying how to install it when missing. */
export function majorBinDir(major: PgMajor, env: NodeJS.ProcessEnv = process.env): string {
  const dir = major === '15' ? '/usr/lib/postgresql/15/bin' : join(env.PG_CACHE_DIR || DEFAULT_PG_CACHE_DIR, `pg${major}`, 'bin');
  if (!existsSync(join(dir, 'postgres'))) {
    throw new Error(`PostgreSQL ${major} (PG_MAJOR=${major}) is not installed: ${join(dir, 'postgres')} is missing. Install it with: PG_MAJORS=${major} bash scripts/setup.sh`);
  }
  return dir;
}

/**
 * Directory of the server binaries (initdb, pg_ctl, postgres, pg_basebackup):
 * PG_MAJOR's when it is set, else the client's directory as before.
 */
export function serverBinDir(): string | undefined {
  return process.env.PG_MAJOR ? majorBinDir(pgMajor()) : pgBinDir();
}

/** The PG_BIN_DIR this module set (so a later `--pg` may replace it, but never one the user set). */
let binDirWeSet: string | undefined;

/**
 * Makes PG_MAJOR the major of this process and of the processes it starts:
 * sets PG_MAJOR (when `major` is given) and, unless the user chose a client
 * with PG_BIN_DIR, points PG_BIN_DIR at that major's binaries. Without
 * PG_MAJOR nothing changes (15, found as before). Returns the major.
 */
export function usePgMajor(major?: string, what = 'PG_MAJOR'): PgMajor {
  if (major !== undefined) process.env.PG_MAJOR = parsePgMajor(major, what);
  if (!process.env.PG_MAJOR) return DEFAULT_PG_MAJOR;
  const chosen = pgMajor();
  const userSetClient = process.env.PG_BIN_DIR !== undefined && process.env.PG_BIN_DIR !== binDirWeSet;
  if (!userSetClient) {
    binDirWeSet = majorBinDir(chosen);
    process.env.PG_BIN_DIR = binDirWeSet;
  }
  return chosen;
}

/**
 * Whether the server binaries in use have the shared library `name` (e.g.
 * `pg_cron`): 15 and 17 have pg_cron, the 18 built by setup has not (see
 * scripts/setup-pg-majors.sh), and the tests that need it skip there.
 */
export function serverHasLibrary(name: string): boolean {
  const dir = serverBinDir();
  const pkglibdir = execFileSync(dir ? join(dir, 'pg_config') : 'pg_config', ['--pkglibdir']).toString().trim();
  return existsSync(join(pkglibdir, `${name}.so`));
}
