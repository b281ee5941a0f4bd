/**
 * Validation of a direct invocation's input. Pure: no AWS calls, so every
 * rejection happens before anything is looked up or started.
 */
import {
  DEFAULT_MODE,
  MODES,
  DRILL_REQUEST_FIELDS,
  HOUSEKEEPING_REQUEST_FIELDS,
  Hazard,
  LATEST,
  RECOVERY_REQUEST_FIELDS,
  RESTORE_TIME_ACCEPTED,
  Strategy,
  TableMode,
  TableName,
  parseAge,
  parseDrillRestoreTime,
  parseHazards,
  parseRestoreTime,
  parseStrategy,
  parseTableList,
  parseTableMode,
  parseChanges,
  parseAfter,
  type ChangesSetting,
  tableScopeProblems,
  validateDatabaseName,
  type SourceKind,
} from '../src/contract';

/** A request that passed every field check. */
export interface ValidRecoveryRequest {
  /** `'latest'`, or the instant as a Date (checked against the window later). */
  readonly restoreTime: Date | typeof LATEST;
  readonly confirm: string;
  /** Undefined means every non-template database. */
  readonly databases?: readonly string[];
  readonly strategy: Strategy;
  /** Swap hazards the operator accepts (empty: none). */
  readonly acceptHazards: readonly Hazard[];
  /** Recover only these tables, as given (the build parses the same text again); undefined for whole databases. */
  readonly tables?: readonly string[];
  readonly tableMode?: TableMode;
  /** CHANGES as given; undefined leaves the default (on). */
  readonly changes?: ChangesSetting;
  /** AFTER as given (the build parses the same text again). */
  readonly after?: string;
}

/** Thrown when the input is rejected; the message lists every problem. */
export class RequestRejectedError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`${problems.join(' ')} Nothing was started.`);
    this.name = 'RequestRejectedError';
  }
}

const REQUEST_SHAPE = '{"restoreTime": "<ISO-8601 UTC>|latest", "confirm": "<source instance id>", "databases"?: ["<name>", ...], "strategy"?: "swap"|"replace", "acceptHazards"?: ["<hazard>", ...], "mode"?: "recover"}';

/**
 * Checks every field of `input` and reports all problems at once, so a
 * request needs one correction round, not four.
 */
export function parseRecoveryRequest(input: unknown, sourceInstanceId: string, noun: SourceKind = 'instance'): ValidRecoveryRequest {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new RequestRejectedError([`request: ${describe(input)} is not a recovery request; accepted: a JSON object ${REQUEST_SHAPE}.`]);
  }
  const fields = input as Record<string, unknown>;
  const { problems, attempt } = problemCollector();

  for (const name of Object.keys(fields)) {
    if (!(RECOVERY_REQUEST_FIELDS as readonly string[]).includes(name)) {
      problems.push(`${name}: unknown field (value ${describe(fields[name])}); accepted fields: ${RECOVERY_REQUEST_FIELDS.join(', ')}.`);
    }
  }
  // housekeeping and drill requests never get here (start-recovery.ts); any other mode is a typo, named as such.
  if (fields.mode !== undefined) {
    // MODE=changes is a CodeBuild override only: this function must never start a recovery for it.
    const modes = MODES.filter((m) => m !== 'changes');
    if (fields.mode === 'changes') {
      problems.push('mode: "changes" is not started by this function; accepted here: ' + `${modes.join(' | ')}. `
        + 'Start MODE=changes with aws codebuild start-build (MODE=changes, STAMP=<the recovery\'s stamp>, CONFIRM=<instance id>).');
    } else if (!(modes as readonly unknown[]).includes(fields.mode)) {
      problems.push(`mode: ${JSON.stringify(fields.mode)} is not a mode; accepted: ${modes.join(' | ')} (default ${DEFAULT_MODE}).`);
    }
  }
  const restoreTime = attempt(() => parseRequiredRestoreTime(fields.restoreTime));
  const confirm = attempt(() => checkConfirm(fields.confirm, sourceInstanceId, noun));
  const databases = attempt(() => parseDatabases(fields.databases));
  const strategy = attempt(() => parseStrategy(fields.strategy, 'strategy'));
  const acceptHazards = attempt(() => parseHazards(fields.acceptHazards === undefined ? undefined : asList(fields.acceptHazards, 'acceptHazards'), 'acceptHazards'));

  const tables = attempt(() => parseTables(fields.tables));
  const tableMode = attempt(() => parseTableMode(fields.tableMode, 'tableMode'));
  if (tableMode !== undefined && (tables !== undefined || fields.tables === undefined)) {
    problems.push(...tableScopeProblems(tables?.names, databases, tableMode, { tables: 'tables', databases: 'databases', tableMode: 'tableMode' }));
  }

  const changes = fields.changes === undefined ? undefined : attempt(() => parseChanges(fields.changes, 'changes'));
  const after = attempt(() => (parseAfter(fields.after, 'after') ? (fields.after as string).trim() : undefined));

  if (problems.length > 0) throw new RequestRejectedError(problems);
  return {
    restoreTime: restoreTime!,
    confirm: confirm!,
    databases,
    strategy: strategy!,
    acceptHazards: acceptHazards!,
    ...(tables ? { tables: tables.texts, tableMode } : {}),
    ...(changes ? { changes } : {}),
    ...(after ? { after } : {}),
  };
}

/** A JSON list of names, each checked as the build will read it from TABLES. */
function parseTables(value: unknown): { names: TableName[]; texts: string[] } | undefined {
  if (value === undefined) return undefined;
  const names = parseTableList(asList(value, 'tables'), 'tables');
  if (!names) throw new Error('tables: [] is empty; accepted: a non-empty JSON array such as ["billing.invoice", "billing.*"], or leave tables out to recover whole databases.');
  return { names, texts: (value as string[]).map((t) => t.trim()) };
}

/** A JSON list, not a comma-separated string (which would slip through as one name). */
function asList(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${field}: ${describe(value)} is not a list; accepted: a JSON array such as ["subscriptions"].`);
  return value;
}

/** A housekeeping request that passed every field check. */
export interface ValidHousekeepingRequest {
  readonly mode: 'housekeeping';
  /** As given (`7d`, `36h`): the runner reads the same text. */
  readonly olderThan: string;
  readonly dryRun: boolean;
  /** Required unless dryRun: housekeeping drops databases and snapshots. */
  readonly confirm?: string;
}

const HOUSEKEEPING_SHAPE = '{"mode": "housekeeping", "olderThan": "7d", "dryRun"?: true|false, "confirm": "<source instance id>" (not needed for a dry run)}';

/** True for `mode: "housekeeping"`; anything else is read as a recovery request (where `mode` may only be `recover`). */
export function isHousekeepingRequest(input: unknown): boolean {
  return typeof input === 'object' && input !== null && (input as Record<string, unknown>).mode === 'housekeeping';
}

/** Checks a housekeeping request; reports every problem at once. */
export function parseHousekeepingRequest(input: Record<string, unknown>, sourceInstanceId: string, noun: SourceKind = 'instance'): ValidHousekeepingRequest {
  const { problems, attempt } = problemCollector();
  for (const name of Object.keys(input)) {
    if (!(HOUSEKEEPING_REQUEST_FIELDS as readonly string[]).includes(name)) {
      problems.push(`${name}: unknown field for housekeeping (value ${describe(input[name])}); accepted fields: ${HOUSEKEEPING_REQUEST_FIELDS.join(', ')}, as in ${HOUSEKEEPING_SHAPE}.`);
    }
  }
  attempt(() => parseAge(input.olderThan, 'olderThan'));
  if (input.dryRun !== undefined && typeof input.dryRun !== 'boolean') problems.push(`dryRun: ${describe(input.dryRun)} is not accepted; accepted: true or false.`);
  const dryRun = input.dryRun === true;
  if (!dryRun || input.confirm !== undefined) attempt(() => checkConfirm(input.confirm, sourceInstanceId, noun));
  if (problems.length > 0) throw new RequestRejectedError(problems);
  return { mode: 'housekeeping', olderThan: (input.olderThan as string).trim(), dryRun, confirm: input.confirm as string | undefined };
}

/** A drill request that passed every field check. */
export interface ValidDrillRequest {
  readonly mode: 'drill';
  /** As given (`latest` when left out): the runner parses the same text. */
  readonly restoreTime: string;
  readonly databases?: readonly string[];
}

const DRILL_SHAPE = '{"mode": "drill", "restoreTime"?: "latest"|"random"|"random:7d"|"<ISO-8601 UTC>", "databases"?: ["<name>", ...]}';

/** True for `mode: "drill"`. */
export function isDrillRequest(input: unknown): boolean {
  return typeof input === 'object' && input !== null && (input as Record<string, unknown>).mode === 'drill';
}

/** Checks a drill request (no confirm: a drill never writes to the original); reports every problem at once. */
export function parseDrillRequest(input: Record<string, unknown>): ValidDrillRequest {
  const { problems, attempt } = problemCollector();
  for (const name of Object.keys(input)) {
    if (!(DRILL_REQUEST_FIELDS as readonly string[]).includes(name)) {
      problems.push(`${name}: unknown field for a drill (value ${describe(input[name])}); accepted fields: ${DRILL_REQUEST_FIELDS.join(', ')}, as in ${DRILL_SHAPE}.`);
    }
  }
  const raw = input.restoreTime === undefined ? LATEST : input.restoreTime;
  attempt(() => parseDrillRestoreTime(raw, 'restoreTime'));
  const databases = attempt(() => parseDatabases(input.databases));
  if (problems.length > 0) throw new RequestRejectedError(problems);
  return { mode: 'drill', restoreTime: raw as string, databases };
}

/** Collects every field's problem instead of stopping at the first: `attempt` runs a check and records what it throws. */
function problemCollector(): { problems: string[]; attempt: <T>(check: () => T) => T | undefined } {
  const problems: string[] = [];
  const attempt = <T>(check: () => T): T | undefined => {
    try {
      return check();
    } catch (err) {
      problems.push((err as Error).message);
      return undefined;
    }
  };
  return { problems, attempt };
}

function parseRequiredRestoreTime(value: unknown): Date | typeof LATEST {
  if (value === undefined) throw new Error(`restoreTime: missing; accepted: ${RESTORE_TIME_ACCEPTED}.`);
  return parseRestoreTime(value, 'restoreTime');
}

function checkConfirm(value: unknown, sourceInstanceId: string, noun: SourceKind): string {
  const accepted = `accepted: exactly "${sourceInstanceId}", the identifier of the ${noun} this recovery overwrites`;
  if (value === undefined) throw new Error(`confirm: missing; ${accepted}.`);
  // Exact match on purpose: this field is the operator's proof they know which source gets overwritten.
  if (value !== sourceInstanceId) throw new Error(`confirm: ${describe(value)} does not match the source ${noun}; ${accepted}.`);
  return value;
}

const DATABASES_ACCEPTED = 'a non-empty JSON array of database names such as ["app", "reporting"], or leave databases out to recover every non-template database';

function parseDatabases(value: unknown): readonly string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw new Error(`databases: ${describe(value)} is not a list; accepted: ${DATABASES_ACCEPTED}.`);
  if (value.length === 0) throw new Error(`databases: [] is empty; accepted: ${DATABASES_ACCEPTED}.`);
  const seen = new Set<string>();
  const problems: string[] = [];
  value.forEach((name: unknown, i) => {
    const field = `databases[${i}]`;
    try {
      validateDatabaseName(name, field);
    } catch (err) {
      problems.push((err as Error).message);
      return;
    }
    const text = name as string;
    // The build receives the list as the comma-separated DATABASES variable and trims each entry.
    if (text.includes(',') || text !== text.trim()) {
      problems.push(`${field}: ${JSON.stringify(text)} cannot be passed to the build, which receives a comma-separated list; accepted: names without commas or leading/trailing spaces.`);
    } else if (seen.has(text)) {
      problems.push(`${field}: ${JSON.stringify(text)} is listed twice; accepted: each database once.`);
    }
    seen.add(text);
  });
  if (problems.length > 0) throw new Error(problems.join(' '));
  return value as string[];
}

const MAX_ECHO = 200;

/** JSON for values, with `undefined` spelled out and long values shortened for the error message. */
function describe(value: unknown): string {
  let text: string;
  try {
    text = value === undefined ? 'undefined' : JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > MAX_ECHO ? `${text.slice(0, MAX_ECHO)}... (${text.length} characters)` : text;
}
