import { ident, literal } from '../names';
import type { DatabaseProperties } from '../verify';

export function createDatabaseSql(name: string, p: DatabaseProperties): string {
  const parts = [`CREATE DATABASE ${ident(name)} TEMPLATE template0 ENCODING ${literal(p.encoding)}`,
    `LC_COLLATE ${literal(p.collate)} LC_CTYPE ${literal(p.ctype)}`];
  if (p.localeProvider === 'i') parts.push(`LOCALE_PROVIDER icu ICU_LOCALE ${literal(p.iculocale ?? '')}`);
  return parts.join(' ');
}
