/**
 * PostgreSQL client processes (pg_dump, pg_restore, psql, vacuumdb) and
 * `pg` connections, with the two rules that matter during an incident:
 * credentials travel only in a child's environment (never argv, never the
 * log), and an AbortSignal kills every child still running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, type ClientConfig } from 'pg';
import { pgBin } from './binaries';
import { missingRegionalRootHint } from './rds-ca';
import type { PgTarget } from '../ports';

/**
 * Settings every session of the runner starts with, whatever the database,
 * the role or `ALTER ROLE ... IN DATABASE` set: they travel in the startup
 * packet (PGOPTIONS for libpq children, `options` for node-pg), which takes
 * precedence over all three.
 *
 * - No timeouts: a database-level statement_timeout must not cut a dump, a
 *   restore or a verification short.
 * - Formats: every setting that changes how a value is printed or parsed, so
 *   that text COPY between two sessions carries values exactly, and row text
 *   is identical on both servers for the same data. pg_dump's own session
 *   setup (`setup_connection`, and the SETs at the head of an archive) is the
 *   reference; lc_monetary (for `money`) and TimeZone are added, which
 *   pg_dump leaves to the server. extra_float_digits 3 prints the shortest
 *   text that reads back to the same float (PostgreSQL 12 and later).
 * - An empty search_path, as pg_dump uses: names resolve only when
 *   qualified, and reg* values print qualified.
 * - row_security off, as pg_dump: a query that row-level security would
 *   filter fails instead of silently reading fewer rows.
 * client_encoding is set per process (PGCLIENTENCODING) where it matters.
 */
export const SESSION_SETTINGS: Readonly<Record<string, string>> = {
  statement_timeout: '0',
  lock_timeout: '0',
  idle_in_transaction_session_timeout: '0',
  DateStyle: 'ISO, YMD',
  IntervalStyle: 'postgres',
  extra_float_digits: '3',
  TimeZone: 'UTC',
  bytea_output: 'hex',
  standard_conforming_strings: 'on',
  xmloption: 'content',
  lc_monetary: 'C',
  search_path: '',
  row_security: 'off',
};

/** SESSION_SETTINGS as startup options: `-c name=value`, with spaces and backslashes escaped as libpq's options parser expects. */
export const SESSION_OPTIONS = Object.entries(SESSION_SETTINGS)
  .map(([name, value]) => `-c ${name}=${value.replace(/\\/g, '\\\\').replace(/ /g, '\\ ')}`)
  .join(' ');

/** Keep this much of a child's stderr for the error message. */
const STDERR_TAIL_BYTES = 8 * 1024;

/**
 * A libpq connection string naming only the database, so names with `=`,
 * spaces or quotes are never parsed as connection options. Host, user and
 * password come from the environment ({@link libpqEnv}).
 */
export function dbConninfo(database: string): string {
  return `dbname='${database.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * The environment of a child connecting to `target`: every inherited PG*
 * variable is dropped (a stray PGSERVICE or PGOPTIONS must not redirect a
 * restore), then host, port, user, password and TLS are set explicitly.
 */
export function libpqEnv(target: PgTarget, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PG')) env[key] = value;
  }
  env.PGHOST = target.host;
  env.PGPORT = String(target.port);
  env.PGUSER = target.user;
  env.PGAPPNAME = 'cdk-rds-pitr';
  env.PGCONNECT_TIMEOUT = '30';
  env.PGOPTIONS = SESSION_OPTIONS;
  if (target.password !== undefined) env.PGPASSWORD = target.password;
  // Without a password, libpq would read ~/.pgpass: keep that working when the caller relies on it.
  if (target.password === undefined && process.env.PGPASSFILE) env.PGPASSFILE = process.env.PGPASSFILE;
  if (target.sslMode) env.PGSSLMODE = target.sslMode;
  if (target.sslRootCert) env.PGSSLROOTCERT = target.sslRootCert;
  return { ...env, ...extra };
}

/** `pg` TLS options equivalent to libpq's sslmode/sslrootcert. */
export function pgSslOptions(target: PgTarget): ClientConfig['ssl'] {
  const mode = target.sslMode ?? 'prefer';
  const ca = target.sslRootCert ? readFileSync(target.sslRootCert, 'utf8') : undefined;
  switch (mode) {
    case 'disable':
    case 'allow':
    case 'prefer':
      return false;
    case 'require':
      // libpq's `require` with a root certificate behaves like verify-ca.
      return ca ? { ca, rejectUnauthorized: true, checkServerIdentity: () => undefined } : { rejectUnauthorized: false };
    case 'verify-ca':
      return { ca, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case 'verify-full':
      return { ca, rejectUnauthorized: true };
    default:
      throw new Error(`sslmode: "${mode}" is not a libpq sslmode; accepted: disable | allow | prefer | require | verify-ca | verify-full.`);
  }
}

/**
 * Opens a `pg` connection to `database` on `target`. Under `prefer` (libpq's
 * default) TLS is tried first and plain TCP only if the server has no TLS.
 */
export async function connect(target: PgTarget, database: string): Promise<Client> {
  const base: ClientConfig = {
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password ?? process.env.PGPASSWORD,
    database,
    application_name: 'cdk-rds-pitr',
    connectionTimeoutMillis: 30_000,
    options: SESSION_OPTIONS,
  };
  const mode = target.sslMode ?? 'prefer';
  const attempts: ClientConfig['ssl'][] = mode === 'prefer' ? [{ rejectUnauthorized: false }, false] : [pgSslOptions(target)];
  let last: unknown;
  for (const ssl of attempts) {
    const client = new Client({ ...base, ssl });
    // A dropped connection must surface as a failed query, not crash the runner.
    client.on('error', () => undefined);
    try {
      await client.connect();
      return client;
    } catch (err) {
      last = err;
      await client.end().catch(() => undefined);
      if (!(ssl && /does not support SSL/i.test((err as Error).message))) break;
    }
  }
  // The SQLSTATE (or Node's error code) goes along: callers tell a refused password (28P01) from an unreachable or untrusted server.
  throw Object.assign(new Error(`cannot connect to ${describe(target, database)}: ${(last as Error).message}${tlsHint(target, last)}`), { code: (last as { code?: string }).code });
}

/** For a refused server certificate: which check failed and against which CA file, so a wrong bundle or host name is told apart. */
export function tlsHint(target: PgTarget, err: unknown): string {
  const { code, message } = err as { code?: string; message?: string };
  const certificate = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(code ?? '') || /certificate|altnames/i.test(message ?? '');
  if (!certificate) return '';
  const ca = target.sslRootCert ? `the CA file ${target.sslRootCert}` : "Node's default CAs (no CA file given)";
  const hostCheck = target.sslMode === 'verify-full' ? ` and name the host ${JSON.stringify(target.host)}` : '';
  return ` (TLS ${target.sslMode ?? 'prefer'}: the server's certificate must chain to ${ca}${hostCheck}; on AWS the CA file is PG_CA_BUNDLE, the RDS CA bundle`
    + `${missingRegionalRootHint(target.host, target.sslRootCert, code)})`;
}

export function describe(target: PgTarget, database: string): string {
  return `database ${JSON.stringify(database)} on ${target.host}:${target.port} as ${JSON.stringify(target.user)}`;
}

export interface ProcessResult {
  readonly stdout: string;
  readonly stderr: string;
}

export interface ChildSpec {
  readonly bin: string;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
}

export interface RunOptions {
  readonly env: NodeJS.ProcessEnv;
  /** Collect stdout (off for processes whose stdout is piped elsewhere). */
  readonly captureStdout?: boolean;
}

/**
 * No orphan writers. A runner killed outright (SIGKILL, a build's container
 * ending) runs no handler, and its pg_restore, pg_dump and psql children
 * would go on writing into the original. So every child runs in a process
 * group of its own (its workers with it), and one watchdog per runner — a
 * detached `sh` that checks twice a second whether the runner is still its
 * parent — kills those groups as soon as the runner is gone. The runner
 * keeps the list of live groups in a file the watchdog reads at that moment.
 * Linux only (it reads /proc); elsewhere children are only killed by the
 * runner itself.
 */
class OrphanWatchdog {
  /** The runner's watchdog, started on first use; null where there is no /proc. */
  static get(): OrphanWatchdog | null {
    if (OrphanWatchdog.started === undefined) OrphanWatchdog.started = existsSync(`/proc/${process.pid}/stat`) ? new OrphanWatchdog() : null;
    return OrphanWatchdog.started;
  }

  private static started?: OrphanWatchdog | null;

  private readonly file = join(mkdtempSync(join(tmpdir(), 'pitr-watchdog-')), 'process-groups');
  private readonly groups = new Set<number>();

  private constructor() {
    writeFileSync(this.file, '');
    const script = 'runner=$1; list=$2; dir=$(dirname "$list")\n'
      + 'while [ "$(cut -d" " -f4 /proc/$$/stat)" = "$runner" ]; do sleep 0.5; done\n'
      + 'while read -r group; do kill -KILL "-$group" 2>/dev/null; done < "$list"\n'
      + 'rm -rf "$dir"\n';
    // Detached and without the runner's stdio: it must outlive the runner and must not hold its output pipes open.
    const watchdog = spawn('sh', ['-c', script, 'pitr-watchdog', String(process.pid), this.file], { detached: true, stdio: 'ignore' });
    watchdog.on('error', () => undefined);
    watchdog.unref();
  }

  add(group: number): void {
    this.groups.add(group);
    this.write();
  }

  delete(group: number): void {
    // Forgotten once it has exited, so a reused id is never killed.
    if (this.groups.delete(group)) this.write();
  }

  private write(): void {
    writeFileSync(this.file, [...this.groups].map((g) => `${g}\n`).join(''));
  }
}

/**
 * Runs PostgreSQL client binaries for one copy. Every child is registered so
 * that an abort kills them all (with their workers), no new child starts
 * after the abort, and none outlives a runner that is killed (OrphanWatchdog).
 */
export class PgProcesses {
  private readonly running = new Set<ChildProcess>();
  /** In-process work (COPY streams on `pg` connections): closing its connections is its kill. */
  private readonly closers = new Set<() => void>();
  private readonly onAbort: () => void;

  constructor(private readonly signal?: AbortSignal) {
    this.onAbort = () => this.killAll();
    signal?.addEventListener('abort', this.onAbort);
  }

  dispose(): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    this.killAll();
  }

  /** Throws the abort reason when the copy was aborted. */
  throwIfAborted(): void {
    if (this.signal?.aborted) throw abortError(this.signal);
  }

  /**
   * Registers in-process work to stop along with the children (`close`
   * ends its connections, so the servers roll back what it was writing).
   * Returns the function that unregisters it once it is done.
   */
  track(close: () => void): () => void {
    this.throwIfAborted();
    this.closers.add(close);
    return () => this.closers.delete(close);
  }

  /** Runs `bin args` to completion; rejects with the tail of its stderr on a non-zero exit. */
  async run(bin: string, args: readonly string[], options: RunOptions): Promise<ProcessResult> {
    const child = this.start(bin, args, options.env, ['ignore', 'pipe', 'pipe']);
    return this.wait(bin, child, options.captureStdout ?? true);
  }

  /**
   * Runs `first | ... | last` with a pipe between each two children (the
   * bytes never pass through Node). Resolves when every one succeeded; if
   * any fails, the others are killed and the error names the one that
   * failed first.
   */
  async pipe(first: ChildSpec, ...rest: ChildSpec[]): Promise<void> {
    const children = [this.start(first.bin, first.args, first.env, ['ignore', 'pipe', 'pipe'])];
    for (const spec of rest) {
      const upstream = children[children.length - 1];
      children.push(this.start(spec.bin, spec.args, spec.env, [upstream.stdout!, 'pipe', 'pipe']));
      // The next child has its own copy of the pipe now. Close ours: Node would otherwise never see
      // EOF on it (nobody reads it), and the upstream child's 'close' event would never come.
      upstream.stdout!.destroy();
    }
    const specs = [first, ...rest];
    const errors: Error[] = [];
    const results = children.map((child, i) => this.wait(specs[i].bin, child, i === children.length - 1).catch((err: Error) => {
      errors.push(err);
      throw err;
    }));
    const failed = await new Promise<boolean>((resolve) => {
      let pending = results.length;
      for (const result of results) result.then(() => --pending === 0 && resolve(false), () => resolve(true));
    });
    if (!failed) return;
    children.forEach(killGroup);
    await Promise.allSettled(results);
    // The first failure is the cause; a neighbour that only lost its pipe (or was killed here) is not.
    throw errors.find((e) => !/Broken pipe|SIGPIPE|SIGKILL/.test(e.message)) ?? errors[0];
  }

  private start(bin: string, args: readonly string[], env: NodeJS.ProcessEnv, stdio: Parameters<typeof spawn>[2]['stdio']): ChildProcess {
    this.throwIfAborted();
    // Its own process group: killing the group kills pg_restore's and pg_dump's parallel workers too.
    const child = spawn(pgBin(bin), args, { env, stdio, detached: true });
    const watchdog = OrphanWatchdog.get();
    if (child.pid !== undefined) watchdog?.add(child.pid);
    this.running.add(child);
    child.once('close', () => {
      this.running.delete(child);
      if (child.pid !== undefined) watchdog?.delete(child.pid);
    });
    return child;
  }

  private wait(bin: string, child: ChildProcess, captureStdout: boolean): Promise<ProcessResult> {
    return new Promise((resolve, reject) => {
      const out: Buffer[] = [];
      let err = '';
      if (captureStdout) child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
      child.stderr?.on('data', (chunk: Buffer) => {
        err = (err + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
      });
      child.once('error', (e) => {
        const hint = (e as { code?: string }).code === 'ENOENT' ? ' (PostgreSQL client not found: install it, or set PG_BIN_DIR)' : '';
        reject(new Error(`${bin} could not start${hint}: ${e.message}`));
      });
      child.once('close', (code, signal) => {
        if (this.signal?.aborted) return reject(abortError(this.signal));
        const stdout = Buffer.concat(out).toString('utf8');
        if (code === 0) return resolve({ stdout, stderr: err });
        const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
        reject(new Error(`${bin} ${how}: ${err.trim() || '(no error output)'}`));
      });
    });
  }

  /** Kills every child still running, with its workers (after a failure, so nothing keeps writing while the half-made database is dropped). */
  killAll(): void {
    for (const child of this.running) killGroup(child);
    for (const close of this.closers) close();
    this.closers.clear();
  }
}

/** SIGKILL to the child's process group (it leads one), or to the child alone if that fails. */
function killGroup(child: ChildProcess): void {
  try {
    if (child.pid === undefined) throw new Error('not started');
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

export function abortError(signal: AbortSignal): Error {
  const reason = signal.reason;
  const why = reason instanceof Error ? reason.message : reason !== undefined ? String(reason) : 'aborted';
  return new Error(`copy aborted (${why})`);
}
