/**
 * Runs tasks at most `limit` at a time, in queue order; a running task may
 * queue more, at the back or ahead of everything waiting. `done()` resolves
 * once nothing is queued or running, and rejects at the first failure without
 * waiting for the others (the caller kills their processes); no further task
 * starts after it.
 */
export class TaskQueue {
  private readonly waiting: Array<() => void> = [];
  private running = 0;
  private pending = 0;
  private failed = false;
  private readonly settled: Promise<void>;
  private resolve!: () => void;
  private reject!: (err: unknown) => void;

  constructor(private readonly limit: number) {
    this.settled = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Nobody may be waiting on done() yet when a task fails.
    this.settled.catch(() => undefined);
  }

  /** Queues `task` behind everything waiting. */
  add(task: () => Promise<unknown>): void {
    this.enqueue([task], false);
  }

  /** Queues `tasks`, in order, ahead of everything waiting. */
  addFirst(tasks: ReadonlyArray<() => Promise<unknown>>): void {
    this.enqueue(tasks, true);
  }

  done(): Promise<void> {
    if (this.pending === 0 && !this.failed) this.resolve();
    return this.settled;
  }

  private enqueue(tasks: ReadonlyArray<() => Promise<unknown>>, first: boolean): void {
    const starts = tasks.map((task) => (): void => {
      this.running++;
      task().catch((err) => {
        if (!this.failed) this.reject(err);
        this.failed = true;
      }).finally(() => {
        this.running--;
        this.pending--;
        if (this.pending === 0 && !this.failed) this.resolve();
        this.next();
      });
    });
    this.pending += starts.length;
    if (first) this.waiting.unshift(...starts);
    else this.waiting.push(...starts);
    this.next();
  }

  private next(): void {
    while (!this.failed && this.running < this.limit && this.waiting.length > 0) this.waiting.shift()!();
  }
}

/** Waits for every one of `work`, then throws the first failure: a clean-up then runs with none of them still running. */
export async function settleAll(work: ReadonlyArray<Promise<unknown>>): Promise<void> {
  for (const r of await Promise.allSettled(work)) if (r.status === 'rejected') throw r.reason;
}
