/** Pure parts of the data path: derived names, list settings, connection strings. No PostgreSQL needed. */
import { parseConnection, parseCopyArguments, redactConnection } from '../buildspec/runner/copy-cli';
import { MAX_IDENTIFIER_BYTES, derivedName, exactPattern, ident, keptName, restoredName, truncateUtf8 } from '../buildspec/runner/postgres/names';
import { settingStatement, splitGucList } from '../buildspec/runner/postgres/verify';

const STAMP = '20261124093000';

describe('names built from a database name', () => {
  test('short names get the plain suffix', () => {
    expect(restoredName('orders', STAMP)).toBe(`orders__pitr_${STAMP}`);
    expect(keptName('orders', STAMP)).toBe(`orders__before_pitr_${STAMP}`);
  });

  test('long multi-byte names fit 63 bytes, are cut on a character boundary, and do not collide', () => {
    const a = `${'ü'.repeat(25)}-a`;
    const b = `${'ü'.repeat(25)}-b`;
    for (const name of [a, b]) {
      for (const derived of [restoredName(name, STAMP), keptName(name, STAMP)]) {
        expect(Buffer.byteLength(derived, 'utf8')).toBeLessThanOrEqual(MAX_IDENTIFIER_BYTES);
        expect(derived).not.toContain('\uFFFD');
        expect(Buffer.from(derived, 'utf8').toString('utf8')).toBe(derived);
      }
    }
    expect(keptName(a, STAMP)).not.toBe(keptName(b, STAMP));
    expect(restoredName(a, STAMP)).not.toBe(restoredName(b, STAMP));
    expect(restoredName(a, STAMP).endsWith(`__pitr_${STAMP}`)).toBe(true);
  });

  test('truncateUtf8 never splits a character', () => {
    expect(truncateUtf8('aü', 2)).toBe('a');
    expect(truncateUtf8('aü', 3)).toBe('aü');
    expect(derivedName('x'.repeat(63), '_s')).toHaveLength(63);
  });

  test('identifiers and patterns are quoted, embedded quotes doubled', () => {
    expect(ident('My "odd" name')).toBe('"My ""odd"" name"');
    expect(exactPattern('Mixed Schema', 'a.b*')).toBe('"Mixed Schema"."a.b*"');
  });
});

describe('database settings', () => {
  test('list settings are split into one literal per element', () => {
    expect(splitGucList('app, "Mixed Schema", "with ""quote""", public')).toEqual(['app', 'Mixed Schema', 'with "quote"', 'public']);
    expect(settingStatement('db', '', 'search_path=app, "Mixed Schema"')).toBe('ALTER DATABASE "db" SET "search_path" TO \'app\', \'Mixed Schema\'');
    expect(settingStatement('db', 'app_writer', 'work_mem=8MB')).toBe('ALTER ROLE "app_writer" IN DATABASE "db" SET "work_mem" TO \'8MB\'');
    expect(settingStatement('db', '', 'app.tenant=it\'s')).toBe('ALTER DATABASE "db" SET "app"."tenant" TO \'it\'\'s\'');
  });
});

describe('connection strings', () => {
  const env = {};
  test('URI with an encoded password, port, database and TLS parameters', () => {
    expect(parseConnection('--source', 'postgresql://master:p%40ss%3Aw@db.example:6543/postgres?sslmode=verify-full&sslrootcert=/ca.pem', env)).toEqual({
      host: 'db.example', port: 6543, user: 'master', password: 'p@ss:w', maintenanceDatabase: 'postgres', sslMode: 'verify-full', sslRootCert: '/ca.pem',
    });
  });

  test('conninfo with quoted values', () => {
    expect(parseConnection('--target', "host=h port=5433 user=u password='a b\\'c' dbname='my db'", env)).toMatchObject({
      host: 'h', port: 5433, user: 'u', password: "a b'c", maintenanceDatabase: 'my db',
    });
  });

  test('password from PGPASSWORD when the string has none; defaults', () => {
    expect(parseConnection('--source', 'postgresql://u@h', { PGPASSWORD: 'envpw' })).toMatchObject({ password: 'envpw', port: 5432, maintenanceDatabase: 'postgres' });
  });

  test('bad strings are refused naming the flag, with the password masked', () => {
    expect(() => parseConnection('--source', 'postgresql://u:hunter2@h:99999/p', env)).toThrow(/^--source: "postgresql:\/\/u:\*\*\*\*\*\*\*\*@h:99999\/p" (has port "99999"|is not a valid URI)/);
    expect(() => parseConnection('--target', 'host=h user=u password=hunter2 service=x', env)).toThrow('unsupported parameter "service"');
    expect(() => parseConnection('--target', 'host=h user=u password=hunter2 service=x', env)).not.toThrow(/hunter2/);
    expect(() => parseConnection('--source', 'postgresql://h/p', env)).toThrow('names no user');
  });

  test('redactConnection masks URI, query and conninfo passwords', () => {
    expect(redactConnection('postgresql://u:pw@h/db')).toBe('postgresql://u:********@h/db');
    expect(redactConnection('postgresql://u@h/db?password=pw&sslmode=require')).toBe('postgresql://u@h/db?password=********&sslmode=require');
    expect(redactConnection("host=h password='p w' user=u")).toBe('host=h password=******** user=u');
  });

  test('copy arguments: --flag=value form, repeated --database, default strategy', () => {
    const args = parseCopyArguments(['--source=postgresql://u@a/postgres', '--target', 'postgresql://u@b/postgres', '--database', 'one', '--database=two words', '--jobs=3'], env);
    expect(args).toMatchObject({ databases: ['one', 'two words'], strategy: 'swap', jobs: 3 });
    expect(args.source.host).toBe('a');
    expect(args.target.host).toBe('b');
    expect(args.streamMinBytes).toBeUndefined();
  });

  test('copy arguments: --stream-min-bytes takes bytes or never, and refuses anything else naming the flag', () => {
    const base = ['--source', 'postgresql://u@a/postgres', '--target', 'postgresql://u@b/postgres', '--database', 'one'];
    expect(parseCopyArguments([...base, '--stream-min-bytes', '0'], env).streamMinBytes).toBe(0);
    expect(parseCopyArguments([...base, '--stream-min-bytes=16777216'], env).streamMinBytes).toBe(16777216);
    expect(parseCopyArguments([...base, '--stream-min-bytes', 'never'], env).streamMinBytes).toBe(Infinity);
    for (const bad of ['-1', '16MB', '1e6', '', '99999999999999999999']) {
      expect(() => parseCopyArguments([...base, '--stream-min-bytes', bad], env))
        .toThrow(`--stream-min-bytes: ${JSON.stringify(bad)} is not a size; accepted: a whole number of bytes (0 streams every table) or "never".`);
    }
  });
});
