/**
 * CHANGES and AFTER on their own (issue #21): the runner's variables, the
 * Lambda's `changes` and `after` fields and their StartBuild overrides, and
 * the replay script's shape for a table with known columns.
 */
import { request } from './recovery-harness';
import { changesSkipped } from '../buildspec/runner/changes';
import { readChangesModeRequest } from '../buildspec/runner/changes-mode';
import { PlanError } from '../buildspec/runner/plan';
import { AFTER_SETTING, replayScript, replaySettings } from '../buildspec/runner/postgres/changes';
import { RequestRejectedError, parseRecoveryRequest } from '../lambda/recovery-request';
import { environmentOverrides } from '../lambda/start-recovery';
import { START_ENV } from '../src/contract';

const startRequest = (env: Record<string, string>): ReturnType<typeof request> => request({ [START_ENV.RESTORE_TIME]: 'latest', ...env });

describe('CHANGES and AFTER in the build', () => {
  test('defaults: recorded, no time bound', () => {
    expect(startRequest({}).changes).toBe(true);
    expect(startRequest({}).after).toBeUndefined();
  });

  test('CHANGES=off skips; AFTER is read as an instant', () => {
    expect(startRequest({ [START_ENV.CHANGES]: 'off' }).changes).toBe(false);
    expect(startRequest({ [START_ENV.AFTER]: '2026-11-24T09:42:00+01:00' }).after).toEqual(new Date('2026-11-24T08:42:00Z'));
  });

  test.each([
    [START_ENV.CHANGES, 'no', 'CHANGES: "no" is not accepted; accepted: on | off (default on'],
    [START_ENV.AFTER, '2026-11-24 09:42', 'AFTER: "2026-11-24 09:42" is not a time; accepted: an ISO-8601 time with its zone'],
    [START_ENV.AFTER, '2026-13-45T09:42:00Z', 'AFTER: "2026-13-45T09:42:00Z" is not a time'],
  ])('%s=%j is refused before anything is created, naming the field, the value and what is accepted', (name, value, message) => {
    expect(() => startRequest({ [name]: value })).toThrow(PlanError);
    expect(() => startRequest({ [name]: value })).toThrow(message);
  });

  test('the summary says why there is no record', () => {
    const plan = (fields: Record<string, unknown>): never => ({ strategy: 'swap', changes: true, ...fields }) as never;
    expect(changesSkipped(plan({}))).toBeUndefined();
    expect(changesSkipped(plan({ changes: false }))).toContain('not recorded (CHANGES=off)');
    expect(changesSkipped(plan({ strategy: 'replace' }))).toContain('strategy replace keeps no pre-recovery copy');
    expect(changesSkipped(plan({ tables: [{ schema: 'a', table: 'b' }] }))).toBeUndefined();
  });
});

describe('the trigger Lambda', () => {
  const SOURCE = 'prod-db';
  const base = { restoreTime: 'latest', confirm: SOURCE };
  const env = (fields: Record<string, unknown>): Record<string, string> =>
    Object.fromEntries(environmentOverrides(parseRecoveryRequest({ ...base, ...fields }, SOURCE)).map((v) => [v.name, v.value!]));

  test('changes travels as CHANGES, after as AFTER; left out when not given (the build default applies)', () => {
    expect(env({ changes: 'off', after: '2026-11-24T09:42:00Z' })).toMatchObject({ [START_ENV.CHANGES]: 'off', [START_ENV.AFTER]: '2026-11-24T09:42:00Z' });
    expect(Object.keys(env({}))).not.toContain(START_ENV.CHANGES);
    expect(Object.keys(env({}))).not.toContain(START_ENV.AFTER);
  });

  test.each([
    [{ changes: false }, 'changes: false is not accepted; accepted: on | off'],
    [{ after: 'yesterday' }, 'after: "yesterday" is not a time'],
  ])('refuses %j before anything is started', (fields, message) => {
    expect(() => parseRecoveryRequest({ ...base, ...fields }, SOURCE)).toThrow(RequestRejectedError);
    expect(() => parseRecoveryRequest({ ...base, ...fields }, SOURCE)).toThrow(message);
  });
});

describe('replayScript', () => {
  const replay = {
    live: '"app"."t"',
    kept: '"pitr_1_after"."app__t"',
    owner: 'app owner',
    key: ['id'],
    insertColumns: ['id', 'v'],
    updateColumns: ['v'],
    hashColumns: ['id', 'v', 'g'],
    overriding: false,
    triggers: [],
  };
  const table = { table: 'app.t', status: 'compared' as const, inserted: 1, changed: 2, deleted: 3, notes: [], replay };
  const ctx = { database: 'shop', keptAs: 'shop__before_pitr_1', schema: 'pitr_1_after', stamp: '1', commitTimes: true };

  test('settings first, one transaction, the time bound read from pitr.after; AFTER sets it', () => {
    const sql = replayScript(ctx, [table], []);
    expect(sql.split('\n').filter((l) => l.startsWith('SET '))).toEqual(replaySettings());
    expect(sql).toMatch(/BEGIN;[\s\S]*INSERT INTO "app"."t" \("id", "v"\)[\s\S]*UPDATE "app"."t" l SET "v" = a."v"[\s\S]*DELETE FROM "app"."t" l[\s\S]*COMMIT;$/);
    expect(sql).toContain('md5(ROW(l."id", l."v", l."g")::text) = a.pitr_row_at_t');
    expect(sql).toContain(`current_setting('${AFTER_SETTING}', true)`);
    expect(sql).toContain('-- needs: INSERT, UPDATE, DELETE on "app"."t" (owner "app owner"');
    expect(replayScript({ ...ctx, after: new Date('2026-11-24T09:42:00Z') }, [table], [])).toContain(`SET ${AFTER_SETTING} = '2026-11-24T09:42:00.000Z';`);
    expect(replayScript({ ...ctx, commitTimes: false }, [table], [])).toContain('track_commit_timestamp was off');
  });
});

describe('MODE=changes', () => {
  const env = { SOURCE_INSTANCE_ID: 'prod-db', [START_ENV.CONFIRM]: 'prod-db', [START_ENV.STAMP]: '20261124093000' };
  test('reads the stamp, the databases and AFTER', () => {
    expect(readChangesModeRequest({ ...env, [START_ENV.DATABASES]: 'orders', [START_ENV.AFTER]: '2026-11-24T09:42:00Z' }))
      .toEqual({ sourceId: 'prod-db', stamp: '20261124093000', databases: ['orders'], after: new Date('2026-11-24T09:42:00Z') });
  });
  test('every problem at once: a bad stamp, no CONFIRM', () => {
    const error = (() => {
      try {
        readChangesModeRequest({ ...env, [START_ENV.STAMP]: '2026-11-24', [START_ENV.CONFIRM]: undefined });
      } catch (err) {
        return err as PlanError;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(PlanError);
    expect(error!.problems.join('\n')).toContain('STAMP: "2026-11-24" is not a run stamp; accepted: the 14 digits YYYYMMDDHHMMSS');
    expect(error!.problems.join('\n')).toContain('CONFIRM: not set; accepted: exactly "prod-db"');
  });
});

test('the trigger Lambda refuses mode "changes" (it would otherwise start a recovery)', () => {
  expect(() => parseRecoveryRequest({ restoreTime: 'latest', confirm: 'prod-db', mode: 'changes' }, 'prod-db')).toThrow('mode: "changes" is not started by this function');
});
