/**
 * Where the PostgreSQL client binaries are. On CodeBuild the buildspec
 * installs them on PATH; on a developer's machine Debian keeps them per major.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Directory of the PostgreSQL binaries: PG_BIN_DIR, else Debian's
 * /usr/lib/postgresql/<major>/bin (newest first), else undefined, meaning
 * "whatever is on PATH" (CodeBuild's Amazon Linux installs the client in /usr/bin).
 */
export function pgBinDir(): string | undefined {
  if (process.env.PG_BIN_DIR) return process.env.PG_BIN_DIR;
  for (const major of ['17', '16', '15']) {
    const dir = `/usr/lib/postgresql/${major}/bin`;
    if (existsSync(join(dir, 'pg_dump'))) return dir;
  }
  return undefined;
}

/** Path of a PostgreSQL binary (client or server). */
export function pgBin(name: string): string {
  const dir = pgBinDir();
  return dir ? join(dir, name) : name;
}

