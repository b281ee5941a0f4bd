/**
 * Throwaway PostgreSQL clusters on loopback, for the local rehearsal, the
 * tests and the bench. Point-in-time recovery is PostgreSQL's own: a base
 * backup plus a WAL archive, replayed with `recovery_target_time`.
 *
 * initdb refuses to run as root, so when we are root every server-side
 * command runs as the `postgres` user and the directories are given to it.
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, appendFileSync, cpSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isRoot, postgresUser } from './os-user';
import { serverBinDir, usePgMajor } from './pg-major';
import type { TestCa } from './test-ca';
import { pgBin, pgBinDir } from '../buildspec/runner/postgres/binaries';

export { pgBin, pgBinDir };

// PG_MAJOR (15|17|18) picks the servers started here and, through PG_BIN_DIR, the client of every process started after.
usePgMajor();

/** Path of a server-side binary: PG_MAJOR's (local/pg-major.ts). */
function serverBin(name: string): string {
  const dir = serverBinDir();
  return dir ? join(dir, name) : name;
}

const execFileAsync = promisify(execFile);

/** The default host of a local "instance". Any other 127.x.y.z address is a different host to libpq and to the runner. */
export const LOOPBACK = '127.0.0.1';
/**
 * The host of the point-in-time copies (temporary instances): on AWS they are
 * another machine than the original, and the data path streams large tables
 * between different hosts. Locally, another loopback address is that.
 */
export const SECOND_HOST = '127.0.0.2';

/** Runs a server-side binary, as `postgres` when we are root. */
async function runServerCommand(bin: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const [cmd, argv] = isRoot() ? ['runuser', ['-u', 'postgres', '--', serverBin(bin), ...args]] : [serverBin(bin), args];
  try {
    const { stdout } = await execFileAsync(cmd, argv, { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const hint = (e as { code?: string }).code === 'ENOENT' ? ' (PostgreSQL server binaries not found: run `bash scripts/setup.sh`, or set PG_BIN_DIR)' : '';
    throw new Error(`${bin} ${args.join(' ')} failed${hint}: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

/** A free TCP port on `host` (asked of the kernel, then released). */
export async function freePort(host = LOOPBACK): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A temp directory the postgres user can use. */
export async function makeWorkDir(prefix: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  if (isRoot()) {
    const { uid, gid } = await postgresUser();
    chownSync(dir, uid, gid);
  }
  return dir;
}

async function ensureDir(path: string, mode = 0o700): Promise<void> {
  mkdirSync(path, { recursive: true, mode });
  chmodSync(path, mode);
  if (isRoot()) {
    const { uid, gid } = await postgresUser();
    chownSync(path, uid, gid);
  }
}

export interface LocalClusterOptions {
  /** Parent directory; a fresh temp dir by default. */
  readonly baseDir?: string;
  /** Archive every WAL segment into `<baseDir>/wal-archive`, enabling point-in-time recovery. */
  readonly archiveWal?: boolean;
  /**
   * An RDS-like master user: LOGIN CREATEDB CREATEROLE with this password,
   * but not a superuser. Password authentication (scram) is then required for
   * TCP connections from loopback (TLS only, with `tls`).
   */
  readonly master?: { readonly username: string; readonly password: string };
  /** Extra postgresql.conf settings. */
  readonly settings?: Record<string, string>;
  /** The loopback address to listen on. @default LOOPBACK */
  readonly host?: string;
  /**
   * Serve TLS with a certificate for `host` issued by this CA, and (with
   * `master`) accept the master user only over TLS, as RDS with
   * `rds.force_ssl` does.
   */
  readonly tls?: TestCa;
  /** The names on the server certificate (tests of a mismatched name). @default [host] */
  readonly certificateNames?: readonly string[];
}

/** postgresql.conf lines for listening on `host`, with TLS from `tls` when given. */
async function listenSettings(
  host: string, port: number, socketDir: string, tls: TestCa | undefined, names: readonly string[] = [host],
): Promise<Record<string, string>> {
  const settings: Record<string, string> = { listen_addresses: `'${host}'`, port: String(port), unix_socket_directories: `'${socketDir}'` };
  if (tls) {
    const { certFile, keyFile } = await tls.serverCertificate(names);
    Object.assign(settings, { ssl: 'on', ssl_cert_file: `'${certFile}'`, ssl_key_file: `'${keyFile}'` });
  } else {
    settings.ssl = 'off';
  }
  return settings;
}

/** One running PostgreSQL cluster on a loopback address. */
export class LocalCluster {
  /** initdb + start. */
  static async create(options: LocalClusterOptions = {}): Promise<LocalCluster> {
    const baseDir = options.baseDir ?? await makeWorkDir('pitr-pg-');
    await ensureDir(baseDir, 0o755);
    const dataDir = join(baseDir, 'data');
    const archiveDir = options.archiveWal ? join(baseDir, 'wal-archive') : undefined;
    if (archiveDir) await ensureDir(archiveDir);
    await runServerCommand('initdb', ['-D', dataDir, '-U', 'postgres', '--auth-local=trust', '--auth-host=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
    const host = options.host ?? LOOPBACK;
    const port = await freePort(host);
    const settings: Record<string, string> = {
      ...await listenSettings(host, port, baseDir, options.tls, options.certificateNames),
      fsync: 'on',
      max_connections: '50',
      ...(archiveDir ? {
        wal_level: 'replica',
        archive_mode: 'on',
        archive_command: `'test ! -f ${archiveDir}/%f && cp %p ${archiveDir}/%f'`,
        archive_timeout: '60',
      } : {}),
      ...(options.settings ?? {}),
    };
    appendFileSync(join(dataDir, 'postgresql.conf'), Object.entries(settings).map(([k, v]) => `${k} = ${v}\n`).join(''));
    if (options.master) {
      // Like RDS: password auth over TCP for everyone but the local superuser.
      writeFileSync(join(dataDir, 'pg_hba.conf'), [
        'local all all trust',
        'host all postgres 127.0.0.0/8 trust',
        'host replication postgres 127.0.0.0/8 trust',
        `${options.tls ? 'hostssl' : 'host'} all all 127.0.0.0/8 scram-sha-256`,
        '',
      ].join('\n'));
    }
    const cluster = new LocalCluster(baseDir, dataDir, host, port, archiveDir, options.tls);
    await cluster.start();
    if (options.master) {
      const { username, password } = options.master;
      await cluster.sql(`CREATE ROLE ${quoteIdent(username)} LOGIN CREATEDB CREATEROLE PASSWORD ${quoteLiteral(password)}`);
      // Like rds_superuser: may read every table's statistics and end sessions.
      await cluster.sql(`GRANT pg_signal_backend, pg_read_all_stats, pg_read_all_settings TO ${quoteIdent(username)}`);
    }
    return cluster;
  }

  private running = false;

  private constructor(
    readonly baseDir: string,
    readonly dataDir: string,
    readonly host: string,
    readonly port: number,
    /** WAL archive directory when archiving is on. */
    readonly archiveDir: string | undefined,
    /** The CA that issued this server's certificate, when it serves TLS. */
    readonly tls: TestCa | undefined,
  ) {}

  /** libpq sslmode and root certificate a client should use: verify-full with the test CA when this server has TLS. */
  get sslOptions(): { sslMode: string; sslRootCert?: string } {
    return this.tls ? { sslMode: 'verify-full', sslRootCert: this.tls.caFile } : { sslMode: 'disable' };
  }

  /** libpq URI for `user` (default: the local superuser) and `database`. */
  uri(database = 'postgres', user = 'postgres'): string {
    return `postgresql://${encodeURIComponent(user)}@${this.host}:${this.port}/${encodeURIComponent(database)}`;
  }

  async start(): Promise<void> {
    await runServerCommand('pg_ctl', ['-D', this.dataDir, '-l', join(this.baseDir, 'server.log'), '-w', '-t', '120', 'start']);
    this.running = true;
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!this.running) return;
    await runServerCommand('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', '-t', '120', 'stop']);
    this.running = false;
  }

  /** Stops the server (if running) and removes every file it had. */
  async destroy(): Promise<void> {
    try {
      await this.stop('immediate');
    } finally {
      rmSync(this.baseDir, { recursive: true, force: true });
    }
  }

  /** Runs SQL as the local superuser through psql; returns unaligned, tuples-only output. */
  async sql(sql: string, database = 'postgres'): Promise<string> {
    const { stdout } = await execFileAsync(pgBin('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', '-d', this.uri(database), '-c', sql], {
      env: { ...process.env, PGPASSWORD: '', PGCONNECT_TIMEOUT: '10' },
      maxBuffer: 64 * 1024 * 1024,
    }).catch((err: { stderr?: string; message: string }) => {
      throw new Error(`SQL on ${this.host}:${this.port}/${database} failed: ${(err.stderr ?? '').trim() || err.message}`);
    });
    return stdout.trim();
  }

  /** Runs a SQL file as the local superuser. */
  async sqlFile(file: string, database = 'postgres'): Promise<void> {
    await execFileAsync(pgBin('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', this.uri(database), '-f', file], {
      env: { ...process.env, PGPASSWORD: '' },
      maxBuffer: 64 * 1024 * 1024,
    }).catch((err: { stderr?: string; message: string }) => {
      throw new Error(`psql -f ${file} on ${this.host}:${this.port}/${database} failed: ${(err.stderr ?? '').trim() || err.message}`);
    });
  }

  /** Forces the current WAL segment into the archive so everything committed so far is recoverable. */
  async archiveCurrentWal(): Promise<void> {
    if (!this.archiveDir) throw new Error('archiveCurrentWal: this cluster was created without archiveWal.');
    const lsn = await this.sql('SELECT pg_walfile_name(pg_switch_wal())');
    const deadline = Date.now() + 60_000;
    while (!existsSync(join(this.archiveDir, lsn))) {
      if (Date.now() > deadline) throw new Error(`WAL segment ${lsn} was not archived within 60 s; see ${join(this.baseDir, 'server.log')}.`);
      await sleep(100);
    }
  }

  /** Takes a base backup into `<baseDir>/base-<n>` (tar-free, plain format). */
  async baseBackup(): Promise<string> {
    const target = join(this.baseDir, `base-${Date.now()}`);
    await runServerCommand('pg_basebackup', ['-h', this.host, '-p', String(this.port), '-U', 'postgres', '-D', target, '-X', 'none', '-c', 'fast', '--no-sync']);
    return target;
  }

  /**
   * Starts a new cluster from `baseBackup` and this cluster's WAL archive,
   * replayed to `target` (a time), to the end of the archive (`'latest'`), or
   * only to the end of the backup itself (`'immediate'`: a snapshot restore).
   * The copy listens on `options.host` (default: this cluster's host) with
   * TLS from this cluster's CA when it has one, as RDS gives a restored
   * instance its own endpoint and certificate. Resolves once the copy is
   * promoted and accepting writes.
   */
  async recoverTo(baseBackup: string, target: Date | 'latest' | 'immediate', options: { baseDir?: string; host?: string } = {}): Promise<LocalCluster> {
    if (!this.archiveDir) throw new Error('recoverTo: this cluster was created without archiveWal.');
    const baseDir = options.baseDir ?? await makeWorkDir('pitr-copy-');
    await ensureDir(baseDir, 0o755);
    const dataDir = join(baseDir, 'data');
    cpSync(baseBackup, dataDir, { recursive: true });
    if (isRoot()) await execFileAsync('chown', ['-R', 'postgres:postgres', dataDir]);
    chmodSync(dataDir, 0o700);
    const host = options.host ?? this.host;
    const port = await freePort(host);
    const recovery: Record<string, string> = {
      ...await listenSettings(host, port, baseDir, this.tls),
      archive_mode: 'off',
      restore_command: `'cp ${this.archiveDir}/%f %p'`,
      ...(target === 'latest' ? {} : target === 'immediate' ? { recovery_target: "'immediate'" } : {
        recovery_target_time: `'${target.toISOString().replace('T', ' ').replace('Z', '+00')}'`,
        recovery_target_inclusive: 'true',
      }),
      recovery_target_action: "'promote'",
    };
    appendFileSync(join(dataDir, 'postgresql.conf'), Object.entries(recovery).map(([k, v]) => `${k} = ${v}\n`).join(''));
    writeFileSync(join(dataDir, 'recovery.signal'), '');
    if (isRoot()) await execFileAsync('chown', ['postgres:postgres', join(dataDir, 'recovery.signal'), join(dataDir, 'postgresql.conf')]);
    const copy = new LocalCluster(baseDir, dataDir, host, port, undefined, this.tls);
    await copy.start();
    const deadline = Date.now() + 300_000;
    // Connections are accepted while WAL is still replayed (hot standby). A login that races the replay of an
    // earlier swap or replace of the database it connects to is refused: "has disappeared from pg_database" (a
    // rename), "is not currently accepting connections" (ALLOW_CONNECTIONS false before a drop), "does not exist"
    // (between the drop and the new database). None is an answer: ask again until the deadline. (RDS reports an
    // instance available only after promotion.)
    const inRecovery = (): Promise<string> => copy.sql('SELECT pg_is_in_recovery()').catch((err: Error) => {
      if (/has disappeared from pg_database|is not currently accepting connections|database "[^"]*" does not exist/.test(err.message)) return 't';
      throw err;
    });
    while ((await inRecovery()) === 't') {
      if (Date.now() > deadline) throw new Error(`point-in-time copy did not finish recovery within 300 s; see ${join(baseDir, 'server.log')}.`);
      await sleep(100);
    }
    return copy;
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
