/**
 * The instruments: a timed child process with the peak resident memory of
 * its whole process tree, and a write probe that plays the application.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
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
