/**
 * Reading the master credentials from Secrets Manager (moto_server): the good
 * case, and every malformed secret, each refused with the ARN and the field
 * named and without the secret's text in the message.
 */
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DUMMY_AWS_ENV, MotoServer, motoClientConfig, startMoto } from './moto';
import { readDatabaseCredentials } from '../buildspec/runner/aws/secret';
import { PROJECT_ENV } from '../src/contract';

const SAVED_ENV = { ...process.env };
const PASSWORD = 'Tr0ub4dor&3-"quoted"-{json}';

let moto: MotoServer;
let secrets: SecretsManagerClient;

beforeAll(async () => {
  moto = await startMoto();
  // The reader builds its own client from the environment, exactly as in CodeBuild.
  Object.assign(process.env, DUMMY_AWS_ENV, { AWS_ENDPOINT_URL: moto.endpoint });
  secrets = new SecretsManagerClient(motoClientConfig(moto.endpoint));
});

afterAll(async () => {
  process.env = SAVED_ENV;
  await moto?.stop();
});

async function secret(name: string, value: { SecretString?: string; SecretBinary?: Uint8Array }): Promise<string> {
  const out = await secrets.send(new CreateSecretCommand({ Name: name, ...value }));
  return out.ARN!;
}

async function refusal(arn: string): Promise<Error> {
  const error = await readDatabaseCredentials(arn).then(() => undefined, (e: Error) => e);
  if (!error) throw new Error(`reading ${arn} was expected to fail`);
  expect(error.message).toContain(`${PROJECT_ENV.SECRET_ARN}: `);
  expect(error.message).toContain(arn);
  expect(error.message).toMatch(/Nothing was created\.$/);
  expect(`${error.message}\n${error.stack}`).not.toContain(PASSWORD);
  return error;
}

test('reads username and password from a CDK-style database secret', async () => {
  const arn = await secret('orders-db/master', {
    SecretString: JSON.stringify({ engine: 'postgres', host: 'orders-db.abc.rds.amazonaws.com', port: 5432, username: 'app_admin', password: PASSWORD }),
  });
  expect(arn).toMatch(/^arn:aws:secretsmanager:us-east-1:/);
  expect(await readDatabaseCredentials(arn)).toEqual({ username: 'app_admin', password: PASSWORD });
});

test('the secret region comes from the ARN even when the environment names none', async () => {
  const arn = await secret('orders-db/region-check', { SecretString: JSON.stringify({ username: 'u', password: PASSWORD }) });
  const saved = { ...process.env };
  delete process.env.AWS_REGION;
  delete process.env.AWS_DEFAULT_REGION;
  try {
    expect((await readDatabaseCredentials(arn)).username).toBe('u');
    await expect(readDatabaseCredentials('orders-db/by-name')).rejects.toThrow('AWS_REGION: not set (nor AWS_DEFAULT_REGION)');
  } finally {
    process.env = saved;
  }
});

test('a secret that is not JSON is refused without echoing it', async () => {
  // JSON.parse would quote this text in its own message.
  const arn = await secret('orders-db/not-json', { SecretString: `password=${PASSWORD}` });
  const error = await refusal(arn);
  expect(error.message).toContain('is not valid JSON');
  expect(error.message).toContain('"username" and "password"');
});

test('a secret without a password names the missing field and the fields present, not their values', async () => {
  const arn = await secret('orders-db/no-password', { SecretString: JSON.stringify({ username: 'app_admin', pasword: PASSWORD }) });
  const error = await refusal(arn);
  expect(error.message).toContain('"password" is missing');
  expect(error.message).toContain('fields present: "username", "pasword"');
  expect(error.message).not.toContain('"username" is');
});

test('wrong types and empty values are each named', async () => {
  const arn = await secret('orders-db/wrong-types', { SecretString: JSON.stringify({ username: '', password: 86420975 }) });
  const error = await refusal(arn);
  expect(error.message).toContain('"username" is empty; "password" is number, not a string');
  expect(error.message).not.toContain('86420975');
});

test('JSON that is not an object is refused', async () => {
  const arn = await secret('orders-db/array', { SecretString: JSON.stringify([PASSWORD]) });
  expect((await refusal(arn)).message).toContain('is JSON but not an object (it is an array)');
});

test('a binary secret is refused', async () => {
  const arn = await secret('orders-db/binary', { SecretBinary: new TextEncoder().encode(PASSWORD) });
  expect((await refusal(arn)).message).toContain('holds binary data, not a JSON string');
});

test('an unknown secret names the ARN and the Secrets Manager error', async () => {
  const arn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:no-such-secret-AbCdEf';
  const error = await refusal(arn);
  expect(error.message).toContain(`reading secret ${arn} failed: ResourceNotFoundException`);
});

test('an empty ARN is refused before calling Secrets Manager', async () => {
  await expect(readDatabaseCredentials('')).rejects.toThrow(`${PROJECT_ENV.SECRET_ARN}: not set; accepted: the ARN of a secret`);
});
