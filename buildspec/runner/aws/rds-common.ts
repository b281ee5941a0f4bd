/**
 * What the two AWS SDK adapters behind `RdsControl` share: the RDS DB
 * instance adapter (rds-control.ts) and the Aurora DB cluster adapter
 * (rds-cluster-control.ts). One wording for a failed RDS call, one way to
 * keep a password out of a message, one reading of the region.
 */
import type { RDSClient, Tag } from '@aws-sdk/client-rds';

/** Where an adapter reports what it decided on its own (e.g. an instance already gone). `StepLog` fits. */
export interface AdapterLog {
  info(message: string): void;
  warn(message: string): void;
}

/** Thrown when an instance or a cluster does not exist, so callers can tell "gone" from "broken". */
export class InstanceNotFoundError extends Error {
  constructor(readonly instanceId: string, message: string) {
    super(message);
    this.name = 'InstanceNotFoundError';
  }
}

export const NOTHING_CREATED = 'Nothing was created.';

/** How to word a failed call. */
export interface Failure {
  /** What was being done: `deleting "x"`. */
  readonly what: string;
  /** Lead-in when RDS answered with a client fault (it refused the request). @default "RDS call failed while <what>" */
  readonly refused?: string;
  /** What was or was not changed; for a mutating call, only certain when RDS refused it. */
  readonly outcome?: string;
  /** The call creates or changes something, so a network or server error leaves its effect unknown. */
  readonly mutating?: boolean;
  /** Advice by fault name. */
  readonly hints?: Readonly<Record<string, string>>;
}

/** One paragraph for the log: what was being done, the RDS fault, advice, and what was created. */
export function rdsError(err: unknown, failure: Failure): Error {
  const e = err as { name?: string; message?: string; $fault?: string };
  const name = e.name ?? 'Error';
  const refusedByRds = e.$fault === 'client';
  const head = refusedByRds && failure.refused ? `${failure.refused} (${failure.what})` : `RDS call failed while ${failure.what}`;
  const hint = failure.hints?.[name];
  const outcome = failure.mutating && !refusedByRds
    ? 'RDS may or may not have acted on the request; the cleanup looks for anything this run created by its tags.'
    : failure.outcome;
  // RDS's own messages usually end in a period already.
  const message = (e.message ?? String(err)).replace(/\.$/, '');
  return new Error(`${head}: ${name}: ${message}.${hint ? ` Likely cause: ${hint}.` : ''}${outcome ? ` ${outcome}` : ''}`);
}

/** Runs one RDS call; a failure becomes `rdsError(err, failure)`. */
export async function callRds<T>(fn: () => Promise<T>, failure: Failure): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw rdsError(err, failure);
  }
}

/**
 * A failed call that carried a password, as a fresh error: the message with
 * every form of the password masked and no `cause` (the SDK error carries
 * the raw HTTP exchange).
 */
export function passwordCallError(err: unknown, password: string, lead: string): Error {
  const e = err as { name?: string; message?: string };
  const message = scrub(`${e.name ?? 'Error'}: ${e.message ?? String(err)}`, password);
  return new Error(`${lead}: ${message}. The password was not changed.`);
}

export function scrub(text: string, secret: string): string {
  let out = text;
  for (const form of new Set([secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)])) {
    if (form) out = out.split(form).join('********');
  }
  return out;
}

export function tagList(tags: Readonly<Record<string, string>>): Tag[] {
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
}

/** The fault's name (`DBInstanceNotFoundFault`), or '' for anything else. */
export function nameOf(err: unknown): string {
  return (err as { name?: string })?.name ?? '';
}

export function regionFromEnv(): string {
  const region = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION;
  if (!region) {
    throw new Error('AWS_REGION: not set (nor AWS_DEFAULT_REGION); accepted: an AWS region such as us-east-1 (CodeBuild sets it). Nothing was created.');
  }
  return region;
}

/** The client's region, for messages; never throws. */
export async function regionOf(client: RDSClient): Promise<string> {
  try {
    const region = client.config.region;
    return typeof region === 'function' ? await region() : String(region);
  } catch {
    return '(unknown region)';
  }
}

export const consoleLog: AdapterLog = {
  info: (message) => process.stdout.write(`${new Date().toISOString()}   ${message}\n`),
  warn: (message) => process.stdout.write(`${new Date().toISOString()} ! ${message}\n`),
};
