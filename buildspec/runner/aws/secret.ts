/**
 * Reads the master credentials (`username`, `password`) from the Secrets
 * Manager secret the construct points the runner at. No message this module
 * produces contains the secret's text: a parse error names the problem, never
 * the bytes it choked on.
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PROJECT_ENV } from '../../../src/contract';

export interface DatabaseCredentials {
  readonly username: string;
  readonly password: string;
}

export interface ReadCredentialsOptions {
  /** @default - a client for the secret ARN's region, else AWS_REGION / AWS_DEFAULT_REGION */
  readonly client?: SecretsManagerClient;
}

const FIELD = PROJECT_ENV.SECRET_ARN;
const ACCEPTED = 'a secret whose value is JSON with string fields "username" and "password", like the ones aws-rds DatabaseSecret and RDS-managed master secrets hold';

export async function readDatabaseCredentials(secretArn: string, options: ReadCredentialsOptions = {}): Promise<DatabaseCredentials> {
  if (!secretArn) throw new Error(`${FIELD}: not set; accepted: the ARN of ${ACCEPTED}. Nothing was created.`);
  const client = options.client ?? new SecretsManagerClient({ region: regionOf(secretArn) });

  let text: string | undefined;
  try {
    text = (await client.send(new GetSecretValueCommand({ SecretId: secretArn }))).SecretString;
  } catch (err) {
    const e = err as { name?: string; message?: string };
    throw new Error(`${FIELD}: reading secret ${secretArn} failed: ${e.name ?? 'Error'}: ${e.message ?? String(err)}. Nothing was created.`);
  }
  if (text === undefined) {
    throw new Error(`${FIELD}: secret ${secretArn} holds binary data, not a JSON string; accepted: ${ACCEPTED}. Nothing was created.`);
  }

  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // JSON.parse quotes the offending input in its message; that input is the secret.
    throw new Error(`${FIELD}: secret ${secretArn} is not valid JSON (${text.length} characters); accepted: ${ACCEPTED}. Nothing was created.`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${FIELD}: secret ${secretArn} is JSON but not an object (it is ${Array.isArray(value) ? 'an array' : typeof value}); accepted: ${ACCEPTED}. Nothing was created.`);
  }

  const record = value as Record<string, unknown>;
  const problems = (['username', 'password'] as const).flatMap((key) => {
    const v = record[key];
    if (v === undefined) return [`"${key}" is missing`];
    if (typeof v !== 'string') return [`"${key}" is ${v === null ? 'null' : typeof v}, not a string`];
    if (v === '') return [`"${key}" is empty`];
    return [];
  });
  if (problems.length > 0) {
    const present = Object.keys(record).map((k) => JSON.stringify(k)).join(', ') || 'none';
    throw new Error(`${FIELD}: secret ${secretArn}: ${problems.join('; ')} (fields present: ${present}); accepted: ${ACCEPTED}. Nothing was created.`);
  }
  return { username: record.username as string, password: record.password as string };
}

/** `arn:aws:secretsmanager:<region>:...`; a secret in another region is still read from its own region. */
function regionOf(secretArn: string): string {
  const fromArn = secretArn.startsWith('arn:') ? secretArn.split(':')[3] : undefined;
  const region = fromArn || process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION;
  if (!region) {
    throw new Error(`AWS_REGION: not set (nor AWS_DEFAULT_REGION), and ${FIELD} is not an ARN that names a region; accepted: an AWS region such as us-east-1. Nothing was created.`);
  }
  return region;
}
