/**
 * `runner.js copy`: the data path on its own (a stable contract other tools
 * rely on, e.g. the benchmark).
 *
 *   node assets/runner/runner.js copy --source <URI|conninfo> --target <URI|conninfo>
 *        --database <name> [--database <name> ...] [--strategy swap|replace] [--jobs N] [--work-dir DIR]
 *
 * `--database` is required: writing into the original is destructive, so
 * what is copied is always named (the full workflow lists the databases of
 * the point-in-time copy itself). The database in `--source`/`--target`
 * is only the one used for catalog queries (`postgres` by default).
 * Exit status: 0 only when every database was copied and verified; 1 when
 * the copy failed; 64 for bad arguments (nothing was touched); 130/143 when
 * stopped by SIGINT/SIGTERM.
 */
import { availableParallelism, tmpdir } from 'node:os';
import { age } from './housekeeping';
import { StepLog, formatBytes, formatDuration } from './log';
import type { DataPath, OriginalCatalog, PgTarget } from './ports';
import { DEFAULT_STREAM_MIN_BYTES, PgDataPath } from './postgres/data-path';
import { PgOriginalCatalog } from './postgres/leftovers';
import { ident, restoredName } from './postgres/names';
import { DEFAULT_STRATEGY, HAZARDS, MAX_JOBS, STRATEGIES, parseHazards, parseStrategy, stampOf, validateDatabaseName, type Hazard, type Strategy } from '../../src/contract';

export const COPY_USAGE = `usage: runner.js copy --source <URI|conninfo> --target <URI|conninfo> --database <name> [--database <name> ...]
                     [--strategy ${STRATEGIES.join('|')}] [--jobs N] [--work-dir DIR] [--accept-hazard NAME ...] [--stream-min-bytes N|never]
  --source    the point-in-time copy, e.g. postgresql://master@pitr-copy.example:5432/postgres?sslmode=verify-full&sslrootcert=/ca.pem
  --target    the original instance, same forms (or "host=... port=... user=... dbname=... sslmode=...")
  --database  a database to copy (repeat for more; required)
  --strategy  swap (default): restore beside the original, verify, swap by rename, keep the original as <db>__before_pitr_<stamp>
              replace: drop the original and restore in its place (for instances without room for two copies)
  --jobs      parallel pg_dump/pg_restore jobs (default: this machine's vCPUs)
  --work-dir  scratch directory for the dump (default: the system temp directory)
  --accept-hazard  go on despite a swap hazard the check step reports (repeat for more): ${Object.values(HAZARDS).join(', ')}
  --stream-min-bytes  stream tables of at least N bytes COPY to COPY instead of through the dump (0: every table; never: none)
              (default: ${DEFAULT_STREAM_MIN_BYTES}, 16 MiB, on every route: one host or two)
Passwords may be given in the URI/conninfo or in PGPASSWORD; they are never printed or put on a command line.`;

const CONN_ACCEPTED = 'a libpq URI (postgresql://user[:password]@host[:port][/database][?sslmode=...&sslrootcert=...]) '
  + 'or a conninfo string ("host=... port=... user=... [password=...] [dbname=...] [sslmode=...] [sslrootcert=...]")';
const CONN_KEYS = new Set(['host', 'port', 'user', 'password', 'dbname', 'sslmode', 'sslrootcert', 'connect_timeout', 'application_name']);
const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];
export const EXIT_FAILED = 1;
/** EX_USAGE, as for the runner's other commands. */
export const EXIT_USAGE = 64;
const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

export class UsageError extends Error {}

/** `value` with any password in it replaced, for error messages. */
export function redactConnection(value: string): string {
  if (/^postgres(ql)?:\/\//i.test(value)) {
    return value.replace(/^(postgres(?:ql)?:\/\/[^:@/]*):[^@]*@/i, '$1:********@').replace(/([?&]password=)[^&]*/gi, '$1********');
  }
  return value.replace(/(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)/gi, '$1********');
}

/** Parses a libpq URI or conninfo string into a PgTarget; throws a UsageError naming `flag`. */
export function parseConnection(flag: string, value: string, env: NodeJS.ProcessEnv = process.env): PgTarget {
  const fail = (why: string): never => {
    throw new UsageError(`${flag}: ${JSON.stringify(redactConnection(value))} ${why}; accepted: ${CONN_ACCEPTED}.`);
  };
  const fields: Record<string, string> = {};
  if (/^postgres(ql)?:\/\//i.test(value)) {
    let url: URL;
    try {
      url = new URL(value.replace(/^postgres(ql)?:/i, 'http:'));
    } catch {
      return fail('is not a valid URI');
    }
    if (url.hostname) fields.host = decodeURIComponent(url.hostname.replace(/^\[|\]$/g, ''));
    if (url.port) fields.port = url.port;
    if (url.username) fields.user = decodeURIComponent(url.username);
    if (url.password) fields.password = decodeURIComponent(url.password);
    const path = decodeURIComponent(url.pathname.replace(/^\//, ''));
    if (path) fields.dbname = path;
    for (const [key, v] of url.searchParams) fields[key] = v;
  } else if (/^\s*[A-Za-z_]+\s*=/.test(value)) {
    const pattern = /\s*([A-Za-z_]+)\s*=\s*('((?:[^'\\]|\\.)*)'|[^\s']*)/y;
    let at = 0;
    while (at < value.length && value.slice(at).trim() !== '') {
      pattern.lastIndex = at;
      const m = pattern.exec(value);
      if (!m) return fail(`cannot be parsed at "${redactConnection(value.slice(at)).slice(0, 30)}"`);
      fields[m[1]] = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : m[2];
      at = pattern.lastIndex;
    }
  } else {
    return fail('is neither a URI nor a conninfo string');
  }
  for (const key of Object.keys(fields)) {
    if (!CONN_KEYS.has(key)) fail(`has the unsupported parameter "${key}" (supported: ${[...CONN_KEYS].join(', ')})`);
  }
  const port = fields.port ?? env.PGPORT ?? '5432';
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) fail(`has port "${port}", not a TCP port (1-65535)`);
  if (fields.sslmode !== undefined && !SSL_MODES.includes(fields.sslmode)) fail(`has sslmode "${fields.sslmode}" (accepted: ${SSL_MODES.join(' | ')})`);
  const user = fields.user ?? env.PGUSER;
  if (!user) fail('names no user (and PGUSER is not set)');
  return {
    host: fields.host ?? env.PGHOST ?? 'localhost',
    port: Number(port),
    user: user!,
    password: fields.password ?? env.PGPASSWORD,
    maintenanceDatabase: fields.dbname ?? 'postgres',
    sslMode: fields.sslmode ?? env.PGSSLMODE,
    sslRootCert: fields.sslrootcert ?? env.PGSSLROOTCERT,
  };
}

export interface CopyArguments {
  readonly source: PgTarget;
  readonly target: PgTarget;
  readonly databases: string[];
  readonly strategy: Strategy;
  readonly jobs: number;
  readonly workDir: string;
  readonly acceptHazards: Hazard[];
  /** Undefined: the data path's default for the route. */
  readonly streamMinBytes?: number;
}

/** Parses the arguments after `copy`; throws a UsageError naming the flag, the value and the accepted form. */
export function parseCopyArguments(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CopyArguments {
  const values: Record<string, string[]> = {};
  const known = ['--source', '--target', '--database', '--strategy', '--jobs', '--work-dir', '--accept-hazard', '--stream-min-bytes'];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    if (!known.includes(flag)) {
      throw new UsageError(`${JSON.stringify(redactConnection(arg))} is not an option of copy; accepted: ${known.join(', ')}.`);
    }
    let value: string;
    if (eq > 0 && arg.startsWith('--')) {
      value = arg.slice(eq + 1);
    } else {
      if (i + 1 >= argv.length) throw new UsageError(`${flag} needs a value.`);
      value = argv[++i];
    }
    (values[flag] ??= []).push(value);
  }
  const single = (flag: string): string | undefined => {
    const v = values[flag];
    if (v && v.length > 1) throw new UsageError(`${flag} is given ${v.length} times; give it once.`);
    return v?.[0];
  };
  const sourceValue = single('--source');
  const targetValue = single('--target');
  if (sourceValue === undefined) throw new UsageError(`--source is required; accepted: ${CONN_ACCEPTED}.`);
  if (targetValue === undefined) throw new UsageError(`--target is required; accepted: ${CONN_ACCEPTED}.`);
  const source = parseConnection('--source', sourceValue, env);
  const target = parseConnection('--target', targetValue, env);

  const databases = values['--database'] ?? [];
  if (databases.length === 0) throw new UsageError('--database is required (repeat it to copy several databases); accepted: a database name on the point-in-time copy.');
  const seen = new Set<string>();
  for (const name of databases) {
    try {
      validateDatabaseName(name, '--database');
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (seen.has(name)) throw new UsageError(`--database: ${JSON.stringify(name)} is given twice; give each database once.`);
    seen.add(name);
  }

  let strategy: Strategy;
  try {
    strategy = parseStrategy(single('--strategy') ?? DEFAULT_STRATEGY, '--strategy');
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const jobsValue = single('--jobs');
  const jobs = jobsValue === undefined ? availableParallelism() : Number(jobsValue);
  if (jobsValue !== undefined && (!/^\d+$/.test(jobsValue) || jobs < 1 || jobs > MAX_JOBS)) {
    throw new UsageError(`--jobs: ${JSON.stringify(jobsValue)} is not a number of parallel jobs; accepted: an integer from 1 to ${MAX_JOBS} (default: this machine's vCPUs, ${availableParallelism()}).`);
  }
  let acceptHazards: Hazard[];
  try {
    acceptHazards = parseHazards(values['--accept-hazard'], '--accept-hazard');
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const streamValue = single('--stream-min-bytes');
  let streamMinBytes: number | undefined;
  if (streamValue !== undefined) {
    streamMinBytes = streamValue === 'never' ? Infinity : Number(streamValue);
    if (streamValue !== 'never' && (!/^\d+$/.test(streamValue) || !Number.isSafeInteger(streamMinBytes))) {
      throw new UsageError(`--stream-min-bytes: ${JSON.stringify(streamValue)} is not a size; accepted: a whole number of bytes (0 streams every table) or "never".`);
    }
  }
  return { source, target, databases, strategy, jobs, workDir: single('--work-dir') ?? tmpdir(), acceptHazards, streamMinBytes };
}

/**
 * Runs `copy` and returns the exit status. Output goes to `out`/`err`
 * (stdout/stderr by default) with every password scrubbed.
 */
export async function runCopyCli(
  argv: string[],
  io: { out?: (line: string) => void; err?: (line: string) => void; dataPath?: DataPath; catalog?: OriginalCatalog; signal?: AbortSignal } = {},
): Promise<number> {
  const out = io.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const err = io.err ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (argv.includes('--help') || argv.includes('-h')) {
    out(COPY_USAGE);
    return 0;
  }
  let args: CopyArguments;
  try {
    args = parseCopyArguments(argv);
  } catch (e) {
    err(`copy: ${(e as Error).message}\nNothing was changed.\n\n${COPY_USAGE}`);
    return EXIT_USAGE;
  }
  const secrets = [args.source.password, args.target.password].filter((s): s is string => !!s);
  const scrub = (line: string): string => secrets.reduce((acc, s) => acc.split(s).join('********'), line);
  const log = new StepLog((line) => out(scrub(line)));
  for (const s of secrets) log.redact(s);

  // CodeBuild stops a build with SIGTERM; Ctrl-C sends SIGINT. Either aborts the copy before anything becomes visible.
  const controller = new AbortController();
  let stoppedBy: string | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    stoppedBy ??= signal;
    controller.abort(new Error(`stopped by ${signal}`));
  };
  const external = io.signal;
  external?.addEventListener('abort', () => controller.abort(external.reason));
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  try {
    const dataPath = io.dataPath ?? new PgDataPath({ streamMinBytes: args.streamMinBytes });
    const stamp = stampOf(new Date());
    log.info(`copy ${args.databases.map((d) => JSON.stringify(d)).join(', ')} from ${args.source.host}:${args.source.port} to ${args.target.host}:${args.target.port}, `
      + `strategy ${args.strategy}, ${args.jobs} job(s), stamp ${stamp}`);
    const catalog = io.catalog ?? (io.dataPath ? undefined : new PgOriginalCatalog());
    if (catalog) await reportHalfCopies(catalog, args.target, args.databases, log);
    const results = await dataPath.copy(args.source, args.target, {
      databases: args.databases,
      strategy: args.strategy,
      jobs: args.jobs,
      stamp,
      workDir: args.workDir,
      log,
      signal: controller.signal,
      acceptHazards: args.acceptHazards,
    });
    log.info('summary:');
    for (const line of log.stepTable()) log.info(line);
    for (const r of results) {
      log.info(`  ${JSON.stringify(r.database)}: verified ${r.tables} tables, ${r.rows} rows; unavailable ${formatDuration(r.unavailableMs)}`
        + `${r.keptAs ? `; pre-recovery data kept as ${JSON.stringify(r.keptAs)}` : ''}`);
    }
    log.info(`copy OK: ${results.length} database(s) equal to the point-in-time copy, verified.`);
    return 0;
  } catch (e) {
    err(scrub(`copy FAILED: ${(e as Error).message}`));
    return stoppedBy ? SIGNAL_EXIT[stoppedBy] : EXIT_FAILED;
  } finally {
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGINT', onSignal);
  }
}

/**
 * Before the copy: the in-progress copies `<db>__pitr_<stamp>` an earlier
 * copy of the same databases left on the target (a killed run leaves one).
 * Unlike the recovery, `copy` has no build to ask whether that run is over,
 * so it drops nothing: it names each one, with its size, age and sessions,
 * and the statement to drop it once the person knows that run is dead.
 */
async function reportHalfCopies(catalog: OriginalCatalog, target: PgTarget, databases: readonly string[], log: StepLog): Promise<void> {
  let marked;
  try {
    marked = await catalog.listMarked(target);
  } catch (err) {
    log.warn(`in-progress copies of earlier runs could not be looked for on the target (${(err as Error).message}); the copy goes ahead`);
    return;
  }
  const now = new Date();
  const half = marked.filter((m) => m.kind === 'in-progress' && databases.some((d) => restoredName(d, m.stamp) === m.name));
  for (const m of half) {
    log.warn(`an earlier copy's in-progress database ${JSON.stringify(m.name)} is on the target (${formatBytes(m.sizeBytes)}, started ${age(m.createdAt, now)} ago, `
      + `${m.connections} session(s) connected): a copy that was killed or is still running. copy cannot tell which, so it leaves it alone; `
      + `it takes room on the target. Once you know that run is over: DROP DATABASE ${ident(m.name)};`);
  }
}
