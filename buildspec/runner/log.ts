/**
 * The build log a user follows during an incident: one timestamped line when
 * a step starts, one with its duration when it ends, and a summary at the end.
 * Secrets never reach it: callers pass values through `redact` registration.
 */

export interface StepRecord {
  readonly name: string;
  readonly startedAt: Date;
  durationMs?: number;
  outcome?: 'ok' | 'failed';
}

export type Sink = (line: string) => void;

export class StepLog {
  readonly steps: StepRecord[] = [];
  private readonly secrets = new Set<string>();

  constructor(private readonly sink: Sink = (line) => process.stdout.write(`${line}\n`), private readonly now: () => Date = () => new Date()) {}

  /** Never print `value`: every line is scrubbed of it. */
  redact(value: string | undefined): void {
    if (value) this.secrets.add(value);
  }

  info(message: string): void {
    this.write(`${this.now().toISOString()}   ${message}`);
  }

  warn(message: string): void {
    this.write(`${this.now().toISOString()} ! ${message}`);
  }

  /** Runs `fn` as a named step: a start line, then `done` or `FAILED` with the duration. */
  async step<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const record: StepRecord = { name, startedAt: this.now() };
    this.steps.push(record);
    this.write(`${record.startedAt.toISOString()} > ${name}`);
    try {
      const result = await fn();
      record.durationMs = this.now().getTime() - record.startedAt.getTime();
      record.outcome = 'ok';
      this.write(`${this.now().toISOString()} < ${name}: done in ${formatDuration(record.durationMs)}`);
      return result;
    } catch (err) {
      record.durationMs = this.now().getTime() - record.startedAt.getTime();
      record.outcome = 'failed';
      this.write(`${this.now().toISOString()} < ${name}: FAILED after ${formatDuration(record.durationMs)}: ${(err as Error).message}`);
      throw err;
    }
  }

  /** Per-step durations, as a block of lines for the summary. */
  stepTable(): string[] {
    const width = Math.max(4, ...this.steps.map((s) => s.name.length));
    return this.steps.map((s) => `  ${s.name.padEnd(width)}  ${s.durationMs === undefined ? 'running' : formatDuration(s.durationMs).padStart(9)}  ${s.outcome ?? ''}`);
  }

  private write(line: string): void {
    let out = line;
    for (const secret of this.secrets) out = out.split(secret).join('********');
    this.sink(out);
  }
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(2)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** GiB from 1 GiB up, MiB below, one decimal. */
export function formatBytes(bytes: number): string {
  const gib = bytes / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
