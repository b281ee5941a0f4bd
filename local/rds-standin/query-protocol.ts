/**
 * The wire format of the RDS Query API as the AWS SDK v3 RDS client speaks
 * it (awsQuery): a form-encoded POST body (`Action=...&Version=2014-10-31&...`,
 * lists as `Tags.Tag.1.Key`), answered with XML wrapped in
 * `<ActionResponse><ActionResult>` and errors as
 * `<ErrorResponse><Error><Type>Sender</Type><Code>...`.
 */
import { randomUUID } from 'node:crypto';

export const RDS_API_VERSION = '2014-10-31';
export const RDS_XML_NAMESPACE = `http://rds.amazonaws.com/doc/${RDS_API_VERSION}/`;

/** An RDS fault, answered as RDS's XML error with its code and HTTP status. */
export class RdsFault extends Error {
  constructor(readonly code: string, message: string, readonly httpStatus = 400, readonly type: 'Sender' | 'Receiver' = 'Sender') {
    super(message);
    this.name = 'RdsFault';
  }
}

/** The parameters of one request. */
export class QueryParams {
  static parse(body: string): QueryParams {
    return new QueryParams(new URLSearchParams(body));
  }

  private constructor(private readonly params: URLSearchParams) {}

  get action(): string {
    return this.params.get('Action') ?? '';
  }

  get version(): string {
    return this.params.get('Version') ?? '';
  }

  string(name: string): string | undefined {
    return this.params.get(name) ?? undefined;
  }

  required(name: string): string {
    const value = this.string(name);
    if (value === undefined || value === '') throw new RdsFault('MissingParameter', `The request must contain the parameter ${name}`);
    return value;
  }

  boolean(name: string): boolean | undefined {
    const value = this.string(name);
    if (value === undefined) return undefined;
    if (value !== 'true' && value !== 'false') throw new RdsFault('InvalidParameterValue', `Invalid value ${JSON.stringify(value)} for ${name}; expected true or false.`);
    return value === 'true';
  }

  integer(name: string): number | undefined {
    const value = this.string(name);
    if (value === undefined) return undefined;
    if (!/^-?\d+$/.test(value)) throw new RdsFault('InvalidParameterValue', `Invalid value ${JSON.stringify(value)} for ${name}; expected an integer.`);
    return Number(value);
  }

  /** A decimal number (Serverless v2 capacities are in half ACUs, e.g. 0.5). */
  number(name: string): number | undefined {
    const value = this.string(name);
    if (value === undefined) return undefined;
    if (!/^-?\d+(\.\d+)?$/.test(value)) throw new RdsFault('InvalidParameterValue', `Invalid value ${JSON.stringify(value)} for ${name}; expected a number.`);
    return Number(value);
  }

  timestamp(name: string): Date | undefined {
    const value = this.string(name);
    if (value === undefined) return undefined;
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) throw new RdsFault('InvalidParameterValue', `Invalid timestamp ${JSON.stringify(value)} for ${name}.`);
    return date;
  }

  /** `Name.Member.1`, `Name.Member.2`, ... */
  list(name: string, member: string): string[] {
    const out: string[] = [];
    for (let i = 1; this.params.has(`${name}.${member}.${i}`); i++) out.push(this.params.get(`${name}.${member}.${i}`)!);
    return out;
  }

  /** `Tags.Tag.1.Key` / `Tags.Tag.1.Value`, ... */
  tags(): Tag[] {
    const out: Tag[] = [];
    for (let i = 1; this.params.has(`Tags.Tag.${i}.Key`); i++) {
      out.push({ Key: this.params.get(`Tags.Tag.${i}.Key`)!, Value: this.params.get(`Tags.Tag.${i}.Value`) ?? '' });
    }
    return out;
  }

  /** Every parameter name, for refusing the ones an action does not implement. */
  names(): string[] {
    return [...new Set(this.params.keys())];
  }
}

export interface Tag {
  readonly Key: string;
  readonly Value: string;
}

/** A list in an XML response: each item becomes `<member>...</member>`. */
export class XmlList {
  constructor(readonly member: string, readonly items: readonly XmlValue[]) {}
}

export type XmlValue = string | number | boolean | Date | undefined | XmlList | { readonly [key: string]: XmlValue };

export function list(member: string, items: readonly XmlValue[]): XmlList {
  return new XmlList(member, items);
}

export function successXml(action: string, result: Readonly<Record<string, XmlValue>>, requestId = randomUUID()): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${RDS_XML_NAMESPACE}">`
    + `<${action}Result>${fields(result)}</${action}Result>`
    + `<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>\n`;
}

export function errorXml(fault: RdsFault, requestId = randomUUID()): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="${RDS_XML_NAMESPACE}">`
    + `<Error><Type>${fault.type}</Type><Code>${escape(fault.code)}</Code><Message>${escape(fault.message)}</Message></Error>`
    + `<RequestId>${requestId}</RequestId></ErrorResponse>\n`;
}

function fields(object: Readonly<Record<string, XmlValue>>): string {
  return Object.entries(object).map(([name, value]) => element(name, value)).join('');
}

function element(name: string, value: XmlValue): string {
  if (value === undefined) return '';
  return `<${name}>${content(value)}</${name}>`;
}

function content(value: Exclude<XmlValue, undefined>): string {
  if (value instanceof XmlList) return value.items.map((item) => element(value.member, item)).join('');
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'object') return fields(value);
  return escape(String(value));
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}
