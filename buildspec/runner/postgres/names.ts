/**
 * Names the copy builds from a database name, and SQL quoting. PostgreSQL
 * silently truncates identifiers to 63 bytes, which would make two long
 * names collide or cut a UTF-8 character in half; these never do.
 */
import { createHash } from 'node:crypto';
import { DATABASE_MARKERS } from '../../../src/contract';

export const MAX_IDENTIFIER_BYTES = 63;
const HASH_CHARS = 8;

/** `"name"` with embedded quotes doubled: the only way identifiers reach SQL. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `schema.name`, both quoted. */
export function qualified(schema: string, name: string): string {
  return `${ident(schema)}.${ident(name)}`;
}

/** A SQL string literal (standard_conforming_strings on). */
export function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** The longest prefix of `value` that fits in `maxBytes` of UTF-8 without splitting a character. */
export function truncateUtf8(value: string, maxBytes: number): string {
  let bytes = 0;
  let out = '';
  for (const ch of value) {
    const size = Buffer.byteLength(ch, 'utf8');
    if (bytes + size > maxBytes) break;
    bytes += size;
    out += ch;
  }
  return out;
}

/**
 * `<database><suffix>` when it fits in 63 bytes; otherwise the database name
 * cut on a character boundary plus a short hash of the full name, so two long
 * names with the same beginning still get different results.
 */
export function derivedName(database: string, suffix: string): string {
  const whole = `${database}${suffix}`;
  if (Buffer.byteLength(whole, 'utf8') <= MAX_IDENTIFIER_BYTES) return whole;
  const hash = createHash('sha256').update(database, 'utf8').digest('hex').slice(0, HASH_CHARS);
  const room = MAX_IDENTIFIER_BYTES - Buffer.byteLength(suffix, 'utf8') - HASH_CHARS - 1;
  return `${truncateUtf8(database, room)}_${hash}${suffix}`;
}

/** Where the point-in-time copy is restored before the swap. */
export function restoredName(database: string, stamp: string): string {
  return derivedName(database, `${DATABASE_MARKERS.IN_PROGRESS}${stamp}`);
}

/** What the pre-recovery database is renamed to by the swap. */
export function keptName(database: string, stamp: string): string {
  return derivedName(database, `${DATABASE_MARKERS.PRE_RECOVERY}${stamp}`);
}

/**
 * A pg_dump/pg_restore name pattern matching exactly `schema.name`: inside
 * double quotes pattern characters are literal, and quotes are doubled.
 */
export function exactPattern(schema: string, name: string): string {
  return `${ident(schema)}.${ident(name)}`;
}
