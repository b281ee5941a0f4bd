/** What the data path's phases hand each other. */
import type { CopyOptions, PgTarget } from '../../ports';
import type { ClientVersionReader } from '../client-version';
import type { HazardReport } from '../hazards';
import type { PgProcesses } from '../process';
import type { DatabaseProperties, Fingerprint, TableCheck } from '../verify';

export interface PgDataPathSettings {
  /** @default DEFAULT_STREAM_MIN_BYTES; Infinity streams nothing, 0 every table. */
  readonly streamMinBytes?: number;
  /**
   * Runs once every table's data is in and before any checksum of the
   * restored database is taken, with its name: the seam tests use to tamper
   * with the restored data.
   */
  readonly beforeVerify?: (database: string, restoredAs: string) => Promise<void>;
  /** How the clients' versions are read (client-version.ts). @default - `<tool> --version` of the binaries the copy runs */
  readonly clientVersion?: ClientVersionReader;
}

/** A table whose data is streamed, with the columns COPY must name (generated columns excluded). */
export interface StreamedTable {
  readonly oid: string;
  /** A partition: its indexes are attached to the parent's, so they wait for the post-data pass. */
  readonly partition: boolean;
  readonly schema: string;
  readonly name: string;
  readonly columns: readonly string[];
  readonly bytes: number;
  /** Stream in COPY's binary format (built-in column types, same major version on both ends). */
  readonly binary: boolean;
}

/**
 * One index of a streamed table, built as soon as the table's data is in,
 * side by side with the table's other indexes: either an archive entry
 * (restored alone with pg_restore), or a primary key / unique constraint
 * built as a unique index and attached with `ADD CONSTRAINT ... USING INDEX`
 * once every index of the table is in (the constraint takes an ACCESS
 * EXCLUSIVE lock, which would serialize the builds).
 */
export type IndexWork = (
  | { readonly kind: 'entry'; readonly list: string }
  | { readonly kind: 'constraint'; readonly createIndex: string; readonly addConstraint: string }
) & {
  /** The index's size on the point-in-time copy (the larger, the longer its build). */
  readonly bytes?: number;
};

export interface RestoreLists {
  /** Everything to restore but the per-table entries. */
  readonly main: string;
  /** Streamed table OID -> its indexes and key constraints. */
  readonly tables: ReadonlyMap<string, readonly IndexWork[]>;
  /** Streamed table OID -> a list of the comments and security labels on those, restored after them. */
  readonly labels: ReadonlyMap<string, string>;
}

/** The point-in-time copy's half of the verification, running beside the copy. */
export interface SourceFingerprint {
  readonly listed: Promise<{ tables: TableCheck[]; sequences: Array<{ schema: string; name: string }> }>;
  readonly done: Promise<Fingerprint>;
  /** After a failure: close its session. */
  readonly cancel: () => void;
}

/** What the checks found out about one database, before anything is written. */
export interface DatabasePlan {
  readonly database: string;
  readonly restoredAs: string;
  readonly keptAs: string;
  readonly existsOnTarget: boolean;
  readonly sourceProperties: DatabaseProperties;
  readonly streamed: readonly StreamedTable[];
  readonly hazards: HazardReport;
  /** pg_database_size on the point-in-time copy, and of the database on the original (0 when it does not exist there). */
  readonly sourceBytes: number;
  readonly targetBytes: number;
}

/** One database's copy, as its phases share it. */
export interface DatabaseCopy {
  readonly source: PgTarget;
  readonly target: PgTarget;
  readonly plan: DatabasePlan;
  readonly options: CopyOptions;
  readonly processes: PgProcesses;
  /** Where pg_dump writes the schema and the small tables. */
  readonly dumpDir: string;
  /** The database's name as the log lines begin with it (JSON-quoted). */
  readonly db: string;
  /** Strategy replace in a recovery (a drill restores beside the point-in-time copy's own database and never drops anything). */
  readonly replace: boolean;
  /** The database restored into: under replace the database's own name, after dropping it; otherwise the restored name. */
  readonly into: string;
  /** What a clean-up after a failure has to undo. */
  readonly state: { created: boolean; dropped: boolean };
  /** The restored tables' checksums, each taken once nothing writes its rows any more. */
  readonly restoredTables: Record<string, string>;
  /** The streamed tables' checksums on the point-in-time copy, taken from their streams. */
  readonly streamChecksums: Record<string, string>;
  /** Tables already analyzed (quoted qualified names). */
  readonly analyzed: Set<string>;
}

/** Tasks that checksum the restored tables: the streamed ones' and the others'. */
export interface ChecksumTasks {
  readonly streamed: Array<() => Promise<void>>;
  readonly others: Array<() => Promise<void>>;
}
