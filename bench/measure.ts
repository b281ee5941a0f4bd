/**
 * The instruments: a timed child process with the peak resident memory of
 * its whole process tree, and a write probe that plays the application.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client } from 'pg';

export interface ProcessRun {
  readonly command: string;
  readonly exitCode: number;
  readonly wallMs: number;
  /** Peak of the summed RSS over the child and all its descendants, sampled every RSS_SAMPLE_MS. */
  readonly peakRssBytes: number;
  readonly stdout: string;
  readonly stderr: string;
}

export const RSS_SAMPLE_MS = 50;
const PAGE_SIZE = 4096;

/** Children still running, so a SIGINT can end them (and only them). */
const live = new Set<ChildProcess>();

export function killLiveChildren(): void {
  for (const child of live) {
    if (child.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(child.pid, 'SIGTERM');
      } catch {
        // It exited between the check and the kill.
      }
    }
  }
}

export interface RunOptions {
  /** Fed to the child's stdin, like `cmd < file`. */
  readonly stdinFile?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Every line the child writes to stdout, as it arrives (for a live log). */
  readonly onStdoutLine?: (line: string) => void;
}

/** Runs `command args` to completion; never throws on a non-zero exit (the caller records it). */
export async function runMeasured(command: string, args: readonly string[], options: RunOptions = {}): Promise<ProcessRun> {
  const stdinFd = options.stdinFile ? openSync(options.stdinFile, 'r') : undefined;
  const started = performance.now();
  const child = spawn(command, args, {
    stdio: [stdinFd ?? 'ignore', 'pipe', 'pipe'],
    env: { ...process.env, PGPASSWORD: '', ...(options.env ?? {}) },
    cwd: options.cwd,
  });
  live.add(child);
  let stdout = '';
  let stderr = '';
  let pending = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    stdout += text;
    if (options.onStdoutLine) {
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      lines.forEach(options.onStdoutLine);
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  let peak = 0;
  const sample = (): void => {
    if (child.pid !== undefined) peak = Math.max(peak, treeRssBytes(child.pid));
  };
  sample();
  const timer = setInterval(sample, RSS_SAMPLE_MS);
  try {
    const exitCode = await new Promise<number>((resolve) => {
      child.on('error', (err) => {
        stderr += `${err.message}\n`;
        resolve(127);
      });
      child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    });
    if (pending && options.onStdoutLine) options.onStdoutLine(pending);
    return { command: [command, ...args].join(' '), exitCode, wallMs: performance.now() - started, peakRssBytes: peak * PAGE_SIZE, stdout, stderr };
  } finally {
    clearInterval(timer);
    live.delete(child);
    if (stdinFd !== undefined) closeSync(stdinFd);
  }
}

/** Resident pages of `root` and every descendant, from /proc. */
function treeRssBytes(root: number): number {
  const childrenOf = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const stat = readProc(`/proc/${entry}/stat`);
    if (!stat) continue;
    // The command name may contain spaces and parentheses; fields after the last ')' are fixed.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = childrenOf.get(ppid) ?? [];
    list.push(Number(entry));
    childrenOf.set(ppid, list);
  }
  let pages = 0;
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    const statm = readProc(`/proc/${pid}/statm`);
    if (statm) pages += Number(statm.split(' ')[1]);
    queue.push(...(childrenOf.get(pid) ?? []));
  }
  return pages;
}

function readProc(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- CPU time

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** What serverCpuMs reads of /proc: injectable, so a test can replay a process that is reaped mid-read. */
export interface ProcReader {
  /** Contents of a file under /proc (e.g. `/proc/123/stat`), undefined when it is gone. */
  read(path: string): string | undefined;
  /** The numeric entries of /proc (one per process). */
  pids(): string[];
}

const realProc: ProcReader = {
  read: readProc,
  pids: () => readdirSync('/proc').filter((entry) => /^[0-9]+$/.test(entry)),
};

/** utime, stime, cutime, cstime of a process, in clock ticks (fields 14-17 of /proc/<pid>/stat). */
function cpuTicks(pid: number | 'self', proc: ProcReader = realProc): [number, number, number, number] | undefined {
  const stat = proc.read(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); field n is fields[n - 3].
  return [Number(fields[11]), Number(fields[12]), Number(fields[13]), Number(fields[14])];
}

/**
 * CPU milliseconds a PostgreSQL server has used so far: the postmaster's own
 * time, the time of every child it has reaped (cutime/cstime), and the time
 * of its live children (checkpointer, walwriter, open or exiting backends).
 * Differences of two readings are what the server spent in between.
 *
 * The postmaster's stat and its children's are separate files read one
 * after the other: a backend reaped in between (one that just ended, as
 * after every measured path) would be in neither, and the reading would
 * drop by its CPU time. So the postmaster is read before and after the
 * children, and the reading is taken again until no child was reaped in
 * between (its reaped-children time did not move).
 */
export function serverCpuMs(dataDir: string, proc: ProcReader = realProc): number {
  const pid = Number(proc.read(join(dataDir, 'postmaster.pid'))?.split('\n')[0]);
  if (!pid) return 0;
  const sum = (t: readonly number[]): number => t.reduce((a, b) => a + b, 0);
  for (let attempt = 1; ; attempt++) {
    const before = cpuTicks(pid, proc);
    if (!before) return 0;
    let ticks = sum(before);
    for (const entry of proc.pids()) {
      const stat = proc.read(`/proc/${entry}/stat`);
      if (!stat || Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== pid) continue;
      // Its own time and that of its own reaped children: what the postmaster's cutime/cstime gains when it reaps it.
      const child = cpuTicks(Number(entry), proc);
      if (child) ticks += sum(child);
    }
    const after = cpuTicks(pid, proc);
    if (!after) return 0;
    if ((after[2] === before[2] && after[3] === before[3]) || attempt >= 20) return ticks * 1000 / clockTicks();
  }
}

/**
 * CPU milliseconds used by this process's finished children and their
 * reaped descendants (pg_dump, pg_restore, psql, the runner, pgcopydb, ...).
 * The write probe runs inside this process and is not counted.
 */
export function childrenCpuMs(): number {
  const own = cpuTicks('self');
  return own ? (own[2] + own[3]) * 1000 / clockTicks() : 0;
}

// ---------------------------------------------------------------- server log

/** A statement the server logged with its duration (log_min_duration_statement). */
export interface LoggedStatement {
  /** Which cluster logged it. */
  readonly cluster: string;
  /** Epoch milliseconds at which it started (logged end minus duration). */
  readonly startEpochMs: number;
  readonly durationMs: number;
  readonly application: string;
  readonly database: string;
  /** The statement's first line, at most STATEMENT_CHARS characters. */
  readonly text: string;
}

const STATEMENT_CHARS = 160;
/** `%n [%p] %a@%d LOG:  duration: 12.345 ms  statement: ...` (log_line_prefix '%n [%p] %a@%d '). */
const DURATION_LINE = /^([0-9]+\.[0-9]+) \[[0-9]+\] (.*?)@(\S*) LOG: {2}duration: ([0-9.]+) ms {2}(?:statement|execute [^:]*|parse [^:]*|bind [^:]*): (.*)$/;

export function parseDurationLog(cluster: string, text: string): LoggedStatement[] {
  const statements: LoggedStatement[] = [];
  for (const line of text.split('\n')) {
    const m = DURATION_LINE.exec(line);
    if (!m) continue;
    const durationMs = Number(m[4]);
    statements.push({
      cluster,
      startEpochMs: Number(m[1]) * 1000 - durationMs,
      durationMs,
      application: m[2],
      database: m[3],
      text: m[5].trim().replace(/\s+/g, ' ').slice(0, STATEMENT_CHARS),
    });
  }
  return statements;
}

/** Reads what a server appended to its log file since `mark()`. */
export class ServerLogTap {
  private offset = 0;

  constructor(private readonly cluster: string, private readonly file: string) {}

  mark(): void {
    this.offset = sizeOf(this.file);
  }

  statements(): LoggedStatement[] {
    const end = sizeOf(this.file);
    if (end <= this.offset) return [];
    const fd = openSync(this.file, 'r');
    try {
      const buffer = Buffer.alloc(end - this.offset);
      readSync(fd, buffer, 0, buffer.length, this.offset);
      return parseDurationLog(this.cluster, buffer.toString('utf8'));
    } finally {
      closeSync(fd);
    }
  }
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------- write probe

export interface ProbeResult {
  readonly attempts: number;
  readonly writes: number;
  readonly failures: number;
  /**
   * Longest time between two consecutive successful writes, i.e. how long the
   * application could not write (failing or blocked). It includes up to one
   * probe interval plus one commit even when nothing was wrong.
   */
  readonly longestGapMs: number;
  /** Milliseconds after the probe started at which that gap began. */
  readonly longestGapStartMs: number;
  /** True when the last attempt succeeded (the target was writable again at the end). */
  readonly recovered: boolean;
  readonly firstError?: string;
}

export const PROBE_INTERVAL_MS = 20;
/** The probe stops by itself after this long, even if nobody stops it. */
const PROBE_MAX_MS = 60 * 60_000;

/** A connection loop inserting one row every PROBE_INTERVAL_MS into `table` on `uri`. */
export class WriteProbe {
  private stopped = false;
  private client: Client | undefined;
  private loop: Promise<ProbeResult> | undefined;

  constructor(private readonly uri: string, private readonly table: string) {}

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<ProbeResult> {
    this.stopped = true;
    if (!this.loop) throw new Error('WriteProbe.stop() before start()');
    // An insert blocked behind a lock would hold the loop: give it a moment, then cut the connection.
    const timer = setTimeout(() => { void this.client?.end().catch(() => undefined); }, 2000);
    try {
      return await this.loop;
    } finally {
      clearTimeout(timer);
    }
  }

  private async run(): Promise<ProbeResult> {
    const started = performance.now();
    let lastSuccess = started;
    let longestGapMs = 0;
    let longestGapStartMs = 0;
    let attempts = 0;
    let writes = 0;
    let failures = 0;
    let lastOk = true;
    let firstError: string | undefined;
    while (!this.stopped && performance.now() - started < PROBE_MAX_MS) {
      attempts++;
      try {
        if (!this.client) {
          const client = new Client({ connectionString: this.uri, connectionTimeoutMillis: 2000, statement_timeout: 60_000, application_name: 'bench-write-probe' });
          client.on('error', () => undefined);
          this.client = client;
          await client.connect();
        }
        await this.client.query(`INSERT INTO ${this.table} (source) VALUES ('probe')`);
        const now = performance.now();
        if (now - lastSuccess > longestGapMs) {
          longestGapMs = now - lastSuccess;
          longestGapStartMs = lastSuccess - started;
        }
        lastSuccess = now;
        writes++;
        lastOk = true;
      } catch (err) {
        failures++;
        lastOk = false;
        firstError ??= (err as Error).message;
        const broken = this.client;
        this.client = undefined;
        await broken?.end().catch(() => undefined);
      }
      await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS));
    }
    if (!lastOk) {
      const open = performance.now() - lastSuccess;
      if (open > longestGapMs) {
        longestGapMs = open;
        longestGapStartMs = lastSuccess - started;
      }
    }
    await this.client?.end().catch(() => undefined);
    this.client = undefined;
    return { attempts, writes, failures, longestGapMs, longestGapStartMs, recovered: lastOk, firstError };
  }
}
