/**
 * The PostgreSQL client must be the server's own major version, checked
 * before anything is created:
 * - `pg_restore` 17 and later always sends `SET transaction_timeout = 0`,
 *   which servers up to 16 reject, so a newer client fails at "restore schema
 *   (pre-data)", after the safety snapshot and the whole restore;
 * - `pg_dump` refuses a server newer than itself.
 * The buildspec installs the client of the instance's major (install-client.sh);
 * this is the check that the one on PATH (or in PG_BIN_DIR) is that client.
 */
import { execFile } from 'node:child_process';
import { pgBin } from './binaries';
import { connect } from './process';
import { majorOfVersion } from '../../../src/contract';
import type { PgTarget } from '../ports';

/** The clients the data path runs and whose version must match the server's. */
export const CHECKED_CLIENTS = ['pg_dump', 'pg_restore'] as const;

/** What `<tool> --version` printed, and where the tool is. */
export interface ClientVersionOutput {
  readonly path: string;
  readonly output: string;
}

/**
 * Reads a client's version. The default runs `<tool> --version` (the binary
 * pgBin resolves: PG_BIN_DIR, Debian's per-major directory, or PATH). Tests
 * pass their own to stand a client of another major in for the real one.
 */
export type ClientVersionReader = (tool: string) => Promise<ClientVersionOutput>;

export const readClientVersion: ClientVersionReader = (tool) => readClientVersionAt(pgBin(tool));

/** Runs `<path> --version`. */
export function readClientVersionAt(path: string): Promise<ClientVersionOutput> {
  return new Promise((resolve, reject) => {
    execFile(path, ['--version'], { timeout: 30_000 }, (err, stdout) => {
      if (err) reject(new Error(`${path} --version could not be run (${err.message.trim()})`));
      else resolve({ path, output: stdout.trim() });
    });
  });
}

/** `pg_dump (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)` -> `15.14`; undefined when the output is not a PostgreSQL client's. */
export function parseClientVersion(output: string): string | undefined {
  return /\(PostgreSQL\) (\d+(?:\.\d+)?(?:[a-z]+\d*)?)/.exec(output)?.[1];
}

/** Thrown when the client and the server are of different majors; the message says what to do. */
export class ClientMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClientMismatchError';
  }
}

/**
 * Connects to `target` (`label` names it in messages, e.g. `the original
 * orders-db`), reads its `server_version_num`, and checks that every client
 * in CHECKED_CLIENTS has the same major. Resolves to a line for the build log;
 * rejects with ClientMismatchError naming both versions and what to do.
 */
export async function checkClientMatchesServer(target: PgTarget, label: string, read: ClientVersionReader = readClientVersion): Promise<string> {
  const client = await connect(target, target.maintenanceDatabase);
  let server: { num: number; text: string };
  try {
    const { rows } = await client.query<{ num: string; text: string }>(
      "SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS text");
    server = { num: Number(rows[0].num), text: rows[0].text };
  } finally {
    await client.end().catch(() => undefined);
  }
  const serverMajor = Math.floor(server.num / 10_000);
  const clients = [];
  for (const tool of CHECKED_CLIENTS) {
    const { path, output } = await read(tool);
    const version = parseClientVersion(output);
    const major = version === undefined ? undefined : majorOfVersion(version);
    if (version === undefined || major === undefined) {
      throw new ClientMismatchError(`${path} --version printed ${JSON.stringify(output.slice(0, 120))}, not a PostgreSQL client version; `
        + `accepted: the PostgreSQL ${serverMajor} client (pg_dump and pg_restore of major ${serverMajor}).`);
    }
    clients.push({ tool, path, version, major });
  }
  const wrong = clients.filter((c) => c.major !== serverMajor);
  const described = clients.map((c) => `${c.tool} ${c.version} (${c.path})`).join(', ');
  const serverText = `PostgreSQL ${server.text} (server_version_num ${server.num})`;
  if (wrong.length > 0) {
    const newer = wrong.some((c) => c.major > serverMajor);
    const why = newer
      ? 'a newer pg_restore sends settings this server does not know (pg_restore 17 and later send SET transaction_timeout, which servers up to 16 reject), so the restore would fail after the snapshot and the whole point-in-time restore'
      : 'pg_dump refuses to dump a server newer than itself';
    throw new ClientMismatchError(`the PostgreSQL client does not match ${label}: ${described} against ${serverText}; ${why}. `
      + `Accepted: pg_dump and pg_restore of major ${serverMajor}. On CodeBuild the install phase installs postgresql<major of the instance's EngineVersion>: `
      + `look at the "[install]" lines of this build's log (a changed buildspec, or PG_BIN_DIR pointing elsewhere, would explain it); locally, put the PostgreSQL ${serverMajor} binaries first on PATH or in PG_BIN_DIR.`);
  }
  return `PostgreSQL client matches ${label}: ${described}; server ${serverText}`;
}
