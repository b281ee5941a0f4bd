/**
 * TABLES and TABLE_MODE on their own: the parser the Lambda and the runner
 * share, how they combine with DATABASES, the Lambda's `tables` field and its
 * StartBuild overrides, and the name resolution with its suggestions.
 */
import { request as startRequest } from './recovery-harness';
import { PlanError } from '../buildspec/runner/plan';
import { CHANGES_TABLE, TableNameError, closest, resolveTables, restoredNames, type CatalogTable } from '../buildspec/runner/postgres/tables';
import { chooseTableDatabase } from '../buildspec/runner/tables';
import { RequestRejectedError, parseRecoveryRequest } from '../lambda/recovery-request';
import { environmentOverrides } from '../lambda/start-recovery';
import { START_ENV, TABLE_NAME_ACCEPTED, formatTableName, parseTableList, parseTableMode, parseTableName, quoteValue } from '../src/contract';

describe('parseTableName', () => {
  test.each([
    ['billing.invoice', { schema: 'billing', table: 'invoice' }],
    ['Billing.Invoice', { schema: 'billing', table: 'invoice' }],
    ['"Sales"."Order Items"', { schema: 'Sales', table: 'Order Items' }],
    ['"we""ird".t', { schema: 'we"ird', table: 't' }],
    ['"a.b"."c,d"', { schema: 'a.b', table: 'c,d' }],
    ['billing.*', { schema: 'billing' }],
    ['"Sales".*', { schema: 'Sales' }],
    ['  public.t$1  ', { schema: 'public', table: 't$1' }],
    ['straße.größe', { schema: 'straße', table: 'größe' }],
  ])('%s', (text, expected) => {
    expect(parseTableName(text)).toEqual(expected);
  });

  test.each([
    ['', 'is not a table name'],
    ['invoice', 'names no schema (write schema.table, e.g. public.<table>)'],
    ['billing.', 'is not schema.table'],
    ['billing.invoice.x', 'is not schema.table'],
    ['"billing.invoice', 'does not start with a schema name'],
    ['*.invoice', 'does not start with a schema name'],
    ['billing.inv*', 'is not schema.table'],
    ['billing."".x', 'is not schema.table'],
    [`billing.${'x'.repeat(64)}`, 'has a name longer than 63 bytes'],
    ['billing.invoice; DROP TABLE x', 'is not schema.table'],
  ])('refuses %j, naming the field, the value and what is accepted', (text, why) => {
    expect(() => parseTableName(text)).toThrow(`${START_ENV.TABLES}: ${quoteValue(text)} ${why}`);
    expect(() => parseTableName(text)).toThrow(TABLE_NAME_ACCEPTED);
  });

  test('formatTableName quotes only where SQL needs it, and reads back to the same name', () => {
    for (const name of [{ schema: 'billing', table: 'invoice' }, { schema: 'Sales', table: 'Order Items' }, { schema: 'we"ird', table: 'x' }, { schema: 'billing' }]) {
      expect(parseTableName(formatTableName(name))).toEqual(name);
    }
    expect(formatTableName({ schema: 'Sales', table: 'Order Items' })).toBe('"Sales"."Order Items"');
  });
});

describe('parseTableList', () => {
  test('splits on commas outside quotes; empty means whole databases', () => {
    expect(parseTableList('billing.invoice, "a,b".c ,x.*')).toEqual([{ schema: 'billing', table: 'invoice' }, { schema: 'a,b', table: 'c' }, { schema: 'x' }]);
    expect(parseTableList('')).toBeUndefined();
    expect(parseTableList('  ')).toBeUndefined();
    expect(parseTableList(undefined)).toBeUndefined();
  });

  test('every bad entry at once; the same table twice (even spelled differently) is refused', () => {
    expect(() => parseTableList('a, b.c, d.')).toThrow(/TABLES: "a" names no schema.*TABLES: "…" \(3 characters\) is not schema\.table/);
    expect(() => parseTableList('billing.invoice,Billing.INVOICE')).toThrow('TABLES: "Billing.INVOICE" is listed twice; list each table once.');
    expect(() => parseTableList(['ok.t', 42], 'tables')).toThrow('tables[1]: a number is not a table name');
  });

  test('TABLE_MODE', () => {
    expect(parseTableMode(undefined)).toBe('side-by-side');
    expect(parseTableMode('swap')).toBe('swap');
    expect(() => parseTableMode('beside')).toThrow('TABLE_MODE: "beside" is not a table mode; accepted: side-by-side | swap (default side-by-side).');
  });
});

describe('the runner refuses bad combinations before anything is created', () => {
  const request = (overrides: Record<string, string>): ReturnType<typeof startRequest> => startRequest({ [START_ENV.RESTORE_TIME]: 'latest', ...overrides });

  test('TABLES with several databases', () => {
    expect(() => request({ [START_ENV.TABLES]: 'billing.invoice', [START_ENV.DATABASES]: 'app,reporting' }))
      .toThrow(/DATABASES: "app…" \(13 characters\) names 2 databases, but TABLES recovers tables of one database.*Nothing was created or changed/);
  });

  test('TABLE_MODE=swap with TABLES; TABLE_MODE without TABLES is refused', () => {
    expect(request({ [START_ENV.TABLES]: 'billing.invoice', [START_ENV.TABLE_MODE]: 'swap', [START_ENV.DATABASES]: 'app' }).tableMode).toBe('swap');
    expect(() => request({ [START_ENV.TABLE_MODE]: 'swap' })).toThrow('TABLE_MODE: "swap" applies to a table recovery only');
  });

  test('every problem at once, each naming its variable', () => {
    let error: unknown;
    try {
      request({ [START_ENV.TABLES]: 'invoice', [START_ENV.TABLE_MODE]: 'x', [START_ENV.STRATEGY]: 'y' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(PlanError);
    expect((error as PlanError).problems.map((p) => p.split(':')[0]).sort()).toEqual(['STRATEGY', 'TABLES', 'TABLE_MODE']);
  });

  test('accepted: one database, side by side', () => {
    const r = request({ [START_ENV.TABLES]: '"Sales"."Order Items",billing.*', [START_ENV.DATABASES]: 'app' });
    expect(r.tables).toEqual([{ schema: 'Sales', table: 'Order Items' }, { schema: 'billing' }]);
    expect(r.tableMode).toBe('side-by-side');
  });

  test('which database: the one named, or the only one at T', () => {
    expect(chooseTableDatabase(['app'], ['app', 'postgres'])).toBe('app');
    expect(chooseTableDatabase(undefined, ['app'])).toBe('app');
    expect(() => chooseTableDatabase(['gone'], ['app'])).toThrow('DATABASES: "gone" did not exist at the restore time; accepted: a database that did: "app". Nothing on the original was changed.');
    expect(() => chooseTableDatabase(undefined, ['app', 'postgres'])).toThrow('TABLES: the instance had 2 databases at the restore time ("app", "postgres")');
  });
});

describe('the trigger Lambda', () => {
  const SOURCE = 'prod-db';
  const base = { restoreTime: 'latest', confirm: SOURCE };

  test('tables travel as TABLES (quoted names with commas intact), tableMode as TABLE_MODE', () => {
    const valid = parseRecoveryRequest({ ...base, databases: ['app'], tables: ['billing.invoice', '"a,b".c'] }, SOURCE);
    const env = Object.fromEntries(environmentOverrides(valid).map((v) => [v.name, v.value]));
    expect(env[START_ENV.TABLES]).toBe('billing.invoice,"a,b".c');
    expect(env[START_ENV.TABLE_MODE]).toBe('side-by-side');
    const swap = parseRecoveryRequest({ ...base, databases: ['app'], tables: ['billing.invoice'], tableMode: 'swap' }, SOURCE);
    expect(Object.fromEntries(environmentOverrides(swap).map((v) => [v.name, v.value]))[START_ENV.TABLE_MODE]).toBe('swap');
    expect(parseTableList(env[START_ENV.TABLES])).toEqual([{ schema: 'billing', table: 'invoice' }, { schema: 'a,b', table: 'c' }]);
    expect(environmentOverrides(parseRecoveryRequest(base, SOURCE)).map((v) => v.name)).not.toContain(START_ENV.TABLES);
  });

  test.each([
    ['a string, not a list', { tables: 'billing.invoice' }, 'tables: "billing.invoice" is not a list'],
    ['an empty list', { tables: [] }, 'tables: a list is not a list of tables'],
    ['no schema', { tables: ['invoice'] }, 'tables[0]: "invoice" names no schema'],
    ['two tables in one entry', { tables: ['a.b,c.d'] }, 'tables[0]: "a.b…" (7 characters) is not schema.table'],
    ['several databases', { tables: ['a.b'], databases: ['x', 'y'] }, 'databases: "x…" (3 characters) names 2 databases, but tables recovers tables of one database'],
    ['a bad mode', { tables: ['a.b'], tableMode: 'inplace' }, 'tableMode: "inplace" is not a table mode'],
    ['tableMode without tables', { tableMode: 'swap' }, 'tableMode: "swap" applies to a table recovery only'],
  ])('refuses %s before anything is started', (_, fields, message) => {
    expect(() => parseRecoveryRequest({ ...base, ...fields }, SOURCE)).toThrow(RequestRejectedError);
    expect(() => parseRecoveryRequest({ ...base, ...fields }, SOURCE)).toThrow(message);
  });
});

describe('name resolution at T', () => {
  let oid = 1000;
  const table = (schema: string, name: string, kind = 'r', isPartition = false): CatalogTable => ({ oid: oid++, schema, name, kind, isPartition });
  const invoice = table('billing', 'invoice');
  const events = table('billing', 'events', 'p');
  const e2025 = table('billing', 'events_2025', 'r', true);
  const items = table('Sales', 'Order Items');
  const atT = [invoice, events, e2025, items, table('public', 'invoice')];
  const partitions = new Map([[events.oid, [e2025.oid]]]);

  test('partitioned tables bring their partitions; a wildcard takes the schema\'s tables but not partitions twice', () => {
    const r = resolveTables([{ schema: 'billing' }], atT, atT, partitions);
    expect(r.chosen.map((t) => t.name)).toEqual(['invoice', 'events']);
    expect(r.moving.map((t) => `${t.name}${t.partitionOf ? `<${t.partitionOf.name}` : ''}`)).toEqual(['invoice', 'events', 'events_2025<events']);
  });

  test('a miss lists close matches that existed at T, and says when the name exists now', () => {
    const now = [...atT, table('billing', 'refund')];
    let error: TableNameError | undefined;
    try {
      resolveTables([{ schema: 'billing', table: 'invoices' }, { schema: 'billing', table: 'refund' }, { schema: 'sales', table: 'Order Items' }], atT, now, partitions);
    } catch (err) {
      error = err as TableNameError;
    }
    expect(error?.problems).toEqual([
      'TABLES: billing.invoices did not exist at the restore time; close matches that existed then: billing.invoice, public.invoice.',
      'TABLES: billing.refund did not exist at the restore time (it exists now, so it was created after the restore time: there is nothing to bring back); '
        + 'no table with a similar name existed then.',
      'TABLES: sales."Order Items" did not exist at the restore time; close matches that existed then: "Sales"."Order Items".',
    ]);
    expect(error?.message).toMatch(/Nothing on the original was changed\.$/);
  });

  test('closest ranks by edit distance, case slips and cut-short names included', () => {
    expect(closest('billing.invioce', ['billing.invoice', 'billing.events', 'x.y'])).toEqual(['billing.invoice']);
    expect(closest('bill', ['billing', 'public'])).toEqual(['billing']);
    expect(closest('zzz', ['billing'])).toEqual([]);
  });

  test('restored names: own name, or <schema>__<name> where two collide or one is the report table', () => {
    expect(restoredNames([
      { schema: 'billing', name: 'invoice' }, { schema: 'public', name: 'invoice' }, { schema: 'x', name: 'line' }, { schema: 'x', name: CHANGES_TABLE },
    ])).toEqual(['billing__invoice', 'public__invoice', 'line', 'x__changes']);
    expect(restoredNames([{ schema: 'billing', name: 'invoice' }, { schema: 'public', name: 'invoice' }, { schema: 'x', name: 'billing__invoice' }]))
      .toEqual(['billing__invoice', 'public__invoice', 'billing__invoice_2']);
    const long = restoredNames([{ schema: 's'.repeat(40), name: 't'.repeat(40) }, { schema: 'o', name: 't'.repeat(40) }]);
    expect(Buffer.byteLength(long[0])).toBeLessThanOrEqual(63);
  });
});
