/**
 * AFTER, the time bound of the replay of writes made after T (issue #21),
 * found while rehearsing it (`npx projen rehearse --changes`):
 * - the bad change's own commit time, as PostgreSQL reports it (microseconds),
 *   must exclude the bad change: AFTER is kept to the millisecond (a JS Date),
 *   so it is rounded up, never down;
 * - a deletion has no commit time, so `pitr.after` skips deletions; when the
 *   bad change deleted nothing, `SET pitr.deletes = 'on'` replays them too;
 * - the README's stated limit: a row written by the bad change and again
 *   afterwards comes back in its latest version, bad change included.
 */
import { MASTER, masterTarget, testCa } from './pg-test-env';
import { StepLog } from '../buildspec/runner/log';
import { DELETES_SETTING, recordChanges } from '../buildspec/runner/postgres/changes';
import { connect } from '../buildspec/runner/postgres/process';
import { LOOPBACK, LocalCluster, quoteIdent } from '../local/cluster';
import { parseAfter } from '../src/contract';

test('AFTER with microseconds (as pg_xact_commit_timestamp prints a commit time) is rounded up to the next millisecond, never down', () => {
  // Rounded down, 09:42:00.123 would be before a bad change committed at 09:42:00.123456, and the replay would bring it back.
  expect(parseAfter('2026-11-24T09:42:00.123456Z')!.toISOString()).toBe('2026-11-24T09:42:00.124Z');
  expect(parseAfter('2026-11-24T09:42:00.123456+00:00')!.toISOString()).toBe('2026-11-24T09:42:00.124Z');
  expect(parseAfter('2026-11-24T10:42:00.999999+01:00')!.toISOString()).toBe('2026-11-24T09:42:01.000Z');
  // Exact to the millisecond or coarser: unchanged.
  expect(parseAfter('2026-11-24T09:42:00.123000Z')!.toISOString()).toBe('2026-11-24T09:42:00.123Z');
  expect(parseAfter('2026-11-24T09:42:00.5Z')!.toISOString()).toBe('2026-11-24T09:42:00.500Z');
  expect(parseAfter('2026-11-24T09:42Z')!.toISOString()).toBe('2026-11-24T09:42:00.000Z');
  expect(() => parseAfter('2026-11-24 09:42:00')).toThrow(/^AFTER: .* is not a time; accepted: an ISO-8601 time with its zone/);
});

let cluster: LocalCluster;

beforeAll(async () => {
  cluster = await LocalCluster.create({
    host: LOOPBACK, tls: await testCa(), master: { username: MASTER.username, password: MASTER.password }, settings: { track_commit_timestamp: 'on' },
  });
});

afterAll(async () => {
  await cluster?.destroy();
});

test('the bad change\'s own commit time as AFTER, and pitr.deletes = on: the replay brings back the later inserts, updates and deletions (children first), not the bad change', async () => {
  const [atT, before] = ['at t', 'before recovery'];
  const schema = `
    SET ROLE ${MASTER.username};
    CREATE TABLE public.customers (id int PRIMARY KEY, name text NOT NULL);
    CREATE TABLE public.orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES public.customers, total numeric NOT NULL);
    INSERT INTO public.customers SELECT g, 'c' || g FROM generate_series(1, 10) g;
    INSERT INTO public.orders SELECT g, 1 + g % 10, g FROM generate_series(1, 100) g;`;
  for (const db of [atT, before]) {
    await cluster.sql(`CREATE DATABASE ${quoteIdent(db)} OWNER ${MASTER.username}`);
    await cluster.sql(schema, db);
  }
  // After T, on the database the recovery will have kept: the bad change (an UPDATE), then good writes of every kind.
  await cluster.sql(`SET ROLE ${MASTER.username}; UPDATE public.orders SET total = 0 WHERE id % 2 = 0`, before);
  const badCommit = await cluster.sql('SELECT to_json(max(pg_xact_commit_timestamp(xmin)))#>>\'{}\' FROM public.orders WHERE total = 0', before);
  expect(badCommit).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00$/);
  await new Promise((r) => setTimeout(r, 20));
  const good = `SET ROLE ${MASTER.username};
    INSERT INTO public.customers VALUES (11, 'c11');
    INSERT INTO public.orders VALUES (101, 11, 5), (102, 11, 6);
    UPDATE public.orders SET total = total + 1000 WHERE id IN (1, 3);
    DELETE FROM public.orders WHERE customer_id = 7;
    DELETE FROM public.customers WHERE id = 7;`;
  await cluster.sql(good, before);

  const record = await recordChanges(masterTarget(cluster), { database: atT, keptAs: before, stamp: '20260404000003', log: new StepLog(() => undefined), after: parseAfter(badCommit) });
  expect(record.tables).toEqual([
    expect.objectContaining({ table: 'public.customers', inserted: 1, changed: 0, deleted: 1 }),
    // 50 zeroed by the bad change, 10 of them (customer 7's) deleted afterwards; 2 good updates; customer 7's 10 orders deleted.
    expect.objectContaining({ table: 'public.orders', inserted: 2, changed: 40 + 2, deleted: 10 }),
  ]);

  // The expected result: the state at T plus exactly the good writes.
  await cluster.sql(`CREATE DATABASE expected TEMPLATE ${quoteIdent(atT)}`);
  await cluster.sql(good, 'expected');
  const client = await connect(masterTarget(cluster), atT);
  try {
    await client.query(`SET ${DELETES_SETTING} = 'on'`);
    await client.query(record.replaySql);
  } finally {
    await client.end();
  }
  const content = (db: string): Promise<string> => cluster.sql(`SELECT (SELECT string_agg(ROW(c.*)::text, ',' ORDER BY id) FROM public.customers c) || ' | '
    || (SELECT string_agg(ROW(o.*)::text, ',' ORDER BY id) FROM public.orders o)`, db);
  expect(await cluster.sql('SELECT count(*) FROM public.orders WHERE total = 0', atT)).toBe('0');
  expect(await content(atT)).toBe(await content('expected'));
});

test('a limit, as the README states it: a row the bad change wrote and a good write changed again comes back in its latest version, bad change included', async () => {
  const [atT, before] = ['limit at t', 'limit before recovery'];
  for (const db of [atT, before]) {
    await cluster.sql(`CREATE DATABASE ${quoteIdent(db)} OWNER ${MASTER.username}`);
    await cluster.sql(`SET ROLE ${MASTER.username}; CREATE TABLE public.orders (id int PRIMARY KEY, total numeric NOT NULL, note text);
      INSERT INTO public.orders SELECT g, g, NULL FROM generate_series(1, 10) g;`, db);
  }
  await cluster.sql(`SET ROLE ${MASTER.username}; UPDATE public.orders SET total = 0`, before);
  const badCommit = await cluster.sql('SELECT to_json(max(pg_xact_commit_timestamp(xmin)))#>>\'{}\' FROM public.orders', before);
  await new Promise((r) => setTimeout(r, 20));
  await cluster.sql(`SET ROLE ${MASTER.username}; UPDATE public.orders SET note = 'called the customer' WHERE id = 3`, before);

  const record = await recordChanges(masterTarget(cluster), { database: atT, keptAs: before, stamp: '20260404000004', log: new StepLog(() => undefined), after: parseAfter(badCommit) });
  const client = await connect(masterTarget(cluster), atT);
  try {
    await client.query(record.replaySql);
  } finally {
    await client.end();
  }
  // Rows only the bad change wrote stay as at T; row 3, written again after it, carries the bad change's total too.
  expect(await cluster.sql("SELECT string_agg(id || ':' || total || ':' || coalesce(note, '-'), ',' ORDER BY id) FROM public.orders WHERE id <= 4", atT))
    .toBe('1:1:-,2:2:-,3:0:called the customer,4:4:-');
});
