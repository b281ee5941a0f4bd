import type { Clock } from '../buildspec/runner/workflow';

/**
 * The workflow's clock in virtual time: `sleep` advances it at once, so a
 * wait of hours takes no real time. Shared by the workflow tests.
 */
export class VirtualClock implements Clock {
  readonly start = Date.parse('2026-11-24T10:00:00Z');
  /** Every sleep asked for, in milliseconds. */
  readonly sleeps: number[] = [];
  /** Aborts `controller` once virtual time passes `at`. */
  stopAt?: { at: number; controller: AbortController };
  private t = this.start;
  now(): Date {
    return new Date(this.t);
  }
  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    this.t += ms;
    if (this.stopAt && this.t >= this.stopAt.at) this.stopAt.controller.abort(new Error('stopped by SIGTERM (test)'));
    if (signal?.aborted) throw signal.reason;
  }
  elapsed(since: Date): number {
    return this.t - since.getTime();
  }
}
