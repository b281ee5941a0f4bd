/**
 * Test helper (not a test): the examples in README.md, read from the README
 * itself, for test/readme-*.test.ts. Every extractor fails loudly when it
 * finds nothing, so an example that moved or changed form is never skipped.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const README_PATH = join(__dirname, '..', 'README.md');

export interface FencedBlock {
  /** The info string after the fence (`ts`, `sh`, `text`...), empty when none. */
  readonly lang: string;
  readonly text: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  /** The nearest `#`-heading above the block. */
  readonly section: string;
}

export function readReadme(): string {
  return readFileSync(README_PATH, 'utf8');
}

/** Every fenced code block, in order. */
export function fencedBlocks(readme: string = readReadme()): FencedBlock[] {
  const lines = readme.split('\n');
  const out: FencedBlock[] = [];
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    const heading = /^#{1,6}\s+(.*)$/.exec(lines[i]);
    if (heading) section = heading[1].trim();
    // A fence may be indented (a block inside a list item): its lines lose that indentation.
    const fence = /^( *)```(\S*)\s*$/.exec(lines[i]);
    if (!fence) continue;
    const start = i;
    const indent = fence[1].length;
    const body: string[] = [];
    for (i++; i < lines.length && !/^ *```\s*$/.test(lines[i]); i++) body.push(lines[i].slice(Math.min(indent, /^ */.exec(lines[i])![0].length)));
    out.push({ lang: fence[2], text: body.join('\n'), line: start + 1, section });
  }
  return out;
}

/** Blocks of these languages; throws when there is none (nothing may be skipped silently). */
export function blocksOf(langs: readonly string[], readme?: string): FencedBlock[] {
  const found = fencedBlocks(readme).filter((b) => langs.includes(b.lang));
  if (found.length === 0) throw new Error(`README.md: no \`\`\`${langs.join('/')} block found; the README tests need them`);
  return found;
}

export interface ShellCommand {
  /** One command, continuation lines joined, as a shell would read it. */
  readonly text: string;
  /** Variable assignments earlier in the same block (`RESTORE_TIME=$(date ...)`), which the command uses. */
  readonly prelude: string;
  /** README line where it starts. */
  readonly line: number;
  /** Where it came from: a fenced block, or an inline code span in prose. */
  readonly from: 'block' | 'inline';
  /** The nearest heading above it. */
  readonly section: string;
}

/** Whether `text` ends inside a single- or double-quoted string (bash's rules: no escapes inside single quotes). */
function insideQuotes(text: string): boolean {
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quote === "'") {
      if (ch === "'") quote = undefined;
    } else if (ch === '\\') {
      i++;
    } else if (quote === '"') {
      if (ch === '"') quote = undefined;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
    } else if (ch === '#' && (i === 0 || /\s/.test(text[i - 1]))) {
      return false;
    }
  }
  return quote !== undefined;
}

/**
 * Every shell command in the README's sh/bash blocks (comment lines are
 * not commands; a trailing `# ...` comment is cut by the shell itself; a
 * command goes on over a trailing backslash or an open quote), and every
 * inline code span that starts with `aws `. `NAME=...` lines are not
 * commands: they are the prelude of the block's later commands.
 */
export function shellCommands(readme: string = readReadme()): ShellCommand[] {
  const out: ShellCommand[] = [];
  for (const block of blocksOf(['sh', 'bash'], readme)) {
    const lines = block.text.split('\n');
    const prelude: string[] = [];
    for (let i = 0; i < lines.length; i++) {
      if (/^\s*(#|$)/.test(lines[i])) continue;
      const first = i;
      let text = lines[i];
      for (;;) {
        if (/\\\s*$/.test(text) && i + 1 < lines.length) text = `${text.replace(/\\\s*$/, '')} ${lines[++i].trim()}`;
        else if (insideQuotes(text) && i + 1 < lines.length) text = `${text}\n${lines[++i]}`;
        else break;
      }
      if (/^[A-Z_][A-Z0-9_]*=/.test(text.trim())) prelude.push(text.trim());
      else out.push({ text: text.trim(), prelude: prelude.join('\n'), line: block.line + 1 + first, from: 'block', section: block.section });
    }
  }
  let section = '';
  let fenced = false;
  readme.split('\n').forEach((line, i) => {
    if (/^ *```/.test(line)) fenced = !fenced;
    const heading = /^#{1,6}\s+(.*)$/.exec(line);
    if (heading && !fenced) section = heading[1].trim();
    if (fenced || /^ *```/.test(line)) return;
    for (const m of line.matchAll(/`(aws [a-z0-9-]+ [a-z0-9-]+[^`]*)`/g)) out.push({ text: m[1], prelude: '', line: i + 1, from: 'inline', section });
  });
  return out;
}

/** The README's placeholders and the values the tests put in their place. */
export const PLACEHOLDERS: Readonly<Record<string, string>> = {
  '<project>': 'pitr-recovery-orders',
  '<instance id>': 'orders-db',
  '<trigger function>': 'pitr-trigger-orders',
  '<drill build id>': 'pitr-recovery-orders:6f1c2a7e-0000-4000-8000-000000000001',
  '<region>': 'us-east-1',
  '<stack>': 'OrdersStack',
  '<build id>': 'pitr-recovery-orders:6f1c2a7e-0000-4000-8000-000000000001',
};

export function fillPlaceholders(text: string): string {
  let out = text;
  for (const [placeholder, value] of Object.entries(PLACEHOLDERS)) out = out.split(placeholder).join(value);
  const left = /<[a-z][a-z ]*>/.exec(out);
  if (left) throw new Error(`README command has a placeholder the tests do not know: ${left[0]} in ${text}`);
  return out;
}

/**
 * The words bash makes of a command line (quotes removed, no expansion
 * beyond what the text asks for), by asking bash itself.
 */
export function shellWords(command: string, prelude = ''): string[] {
  const out = execFileSync('bash', ['-c', `words() { printf '%s\\0' "$@"; }\n${prelude}\nwords ${command}`], { encoding: 'utf8' });
  return out.split('\0').slice(0, -1);
}

// ---------------------------------------------------------------- the AWS CLI's shorthand syntax

/**
 * A port of the AWS CLI's shorthand parser (awscli/shorthand.py,
 * `ShorthandParser`, identical in v1 and v2), for when no `aws` v2 is
 * installed. Grammar, from that module:
 *   parameter = keyval *("," keyval); keyval = key "=" [values]
 *   values = csv-value / explicit-list "[...]" / hash-literal "{...}"
 *   csv-value = first-value *("," second-value): `value=a,b` is the LIST
 *   ["a", "b"] unless what follows the comma parses as the next `key=`;
 *   a value may be 'single-' or "double-quoted" (backslash escapes the quote), and `\,` is a literal comma.
 * Documented in the AWS CLI User Guide, "Using shorthand syntax in the AWS CLI"
 * (docs.aws.amazon.com/cli/latest/userguide/shorthand-syntax.html).
 */
export class ShorthandSyntaxError extends Error {}

type ShorthandValue = string | ShorthandValue[] | { [key: string]: ShorthandValue };

const START_WORD = '!#-&(-+\\--<>-Z\\\\-z\\u007c-\\uffff';
const FIRST_VALUE = new RegExp(`^((\\\\,)|[${START_WORD}])((\\\\,)|[\\s!#-&(-+\\--\\\\^-|~-\\uffff])*`, 'u');
const SECOND_VALUE = new RegExp(`^((\\\\,)|[${START_WORD}])((\\\\,)|[\\s!#-&(-+\\--<>-\\uffff])*`, 'u');
const SINGLE_QUOTED = /^'(?:\\\\|\\'|[^'])*'/u;
const DOUBLE_QUOTED = /^"(?:\\\\|\\"|[^"])*"/u;
const KEY_CHARS = /[A-Za-z0-9\-_.#/:]/;

export function parseShorthand(input: string): Record<string, ShorthandValue> {
  let i = 0;
  const eof = (): boolean => i >= input.length;
  const current = (): string | undefined => (eof() ? undefined : input[i]);
  const whitespace = (): void => {
    while (!eof() && /\s/.test(input[i])) i++;
  };
  const fail = (expected: string, actual: string): never => {
    throw new ShorthandSyntaxError(`Expected: '${expected}', received: '${actual}' for input:\n${input}\n${' '.repeat(i)}^`);
  };
  const expect = (ch: string, ws = false): void => {
    if (ws) whitespace();
    if (eof()) fail(ch, 'EOF');
    if (input[i] !== ch) fail(ch, input[i]);
    i++;
    if (ws) whitespace();
  };
  const mustMatch = (re: RegExp, name: string): string => {
    const m = re.exec(input.slice(i));
    if (!m) return fail(`<${name}>`, '<none>');
    i += m[0].length;
    return m[0];
  };
  const quoted = (re: RegExp, q: string, name: string): string =>
    mustMatch(re, name).slice(1, -1).split(`\\${q}`).join(q).split('\\\\').join('\\');
  const key = (): string => {
    const start = i;
    while (!eof() && KEY_CHARS.test(input[i])) i++;
    return input.slice(start, i);
  };
  const plain = (re: RegExp): string => {
    const m = re.exec(input.slice(i));
    if (!m) return '';
    i += m[0].length;
    return m[0].split('\\,').join(',').trimEnd();
  };
  const firstValue = (): string => {
    if (current() === "'") return quoted(SINGLE_QUOTED, "'", 'singled quoted');
    if (current() === '"') return quoted(DOUBLE_QUOTED, '"', 'double quoted');
    return plain(FIRST_VALUE);
  };
  const secondValue = (): string => {
    if (current() === "'") return quoted(SINGLE_QUOTED, "'", 'singled quoted');
    if (current() === '"') return quoted(DOUBLE_QUOTED, '"', 'double quoted');
    return mustMatch(SECOND_VALUE, 'second').split('\\,').join(',').trimEnd();
  };
  const explicitValues = (): ShorthandValue => (current() === '[' ? explicitList() : current() === '{' ? hashLiteral() : firstValue());
  function explicitList(): ShorthandValue[] {
    expect('[', true);
    const values: ShorthandValue[] = [];
    while (current() !== ']') {
      if (eof()) fail(']', 'EOF');
      values.push(explicitValues());
      whitespace();
      if (current() !== ']') {
        expect(',');
        whitespace();
      }
    }
    expect(']');
    return values;
  }
  function hashLiteral(): Record<string, ShorthandValue> {
    expect('{', true);
    const out: Record<string, ShorthandValue> = {};
    while (current() !== '}') {
      if (eof()) fail('}', 'EOF');
      const k = key();
      expect('=', true);
      const v = explicitValues();
      whitespace();
      if (current() !== '}') {
        expect(',');
        whitespace();
      }
      out[k] = v;
    }
    expect('}');
    return out;
  }
  const csvValue = (): ShorthandValue => {
    const first = firstValue();
    whitespace();
    if (eof() || input[i] !== ',') return first;
    expect(',', true);
    const list: string[] = [first];
    for (;;) {
      try {
        const next = secondValue();
        whitespace();
        if (eof()) {
          list.push(next);
          break;
        }
        expect(',', true);
        list.push(next);
      } catch (err) {
        if (!(err instanceof ShorthandSyntaxError) || eof()) throw err;
        while (i >= 0 && input[i] !== ',') i--; // back to the comma before the next key=
        break;
      }
    }
    return list.length === 1 ? first : list;
  };
  const values = (): ShorthandValue => (eof() ? '' : current() === '[' ? explicitList() : current() === '{' ? hashLiteral() : csvValue());
  const keyval = (): [string, ShorthandValue] => {
    const k = key();
    expect('=', true);
    return [k, values()];
  };

  const params: Record<string, ShorthandValue> = {};
  const [k0, v0] = keyval();
  params[k0] = v0;
  while (!eof()) {
    expect(',', true);
    const [k, v] = keyval();
    if (k in params) throw new ShorthandSyntaxError(`Second instance of key "${k}" encountered for input:\n${input}`);
    params[k] = v;
  }
  return params;
}

/**
 * How the AWS CLI reads the words after a list-of-structures option such as
 * `--environment-variables-override` (awscli/argprocess.py): one word that
 * starts with `[` is JSON; otherwise each word is one structure in shorthand.
 */
export function parseListOfStructuresArgument(words: readonly string[]): unknown[] {
  if (words.length === 1 && words[0].trim().startsWith('[')) return JSON.parse(words[0]) as unknown[];
  return words.map((w) => (w.trim().startsWith('{') ? JSON.parse(w) : parseShorthand(w)));
}
