/** The data path's thresholds: what is streamed, the disk head-room, the swap's patience. */
import type { PgTarget } from '../../ports';

/** Tables at least this large are streamed source -> target instead of going through the dump directory. */
export const DEFAULT_STREAM_MIN_BYTES = 16 * 1024 * 1024;

/**
 * Streaming overlaps the source's COPY TO with the target's COPY FROM, skips
 * writing the table to the dump directory and reading it back, and gives the
 * table's checksum on the point-in-time copy from the stream itself (no
 * second read there). It was once kept to different hosts: when both servers
 * share one host's CPUs, the overlap adds contention. Since the checksum comes
 * from the stream, streaming saves CPU on one host too (measured on 2 cores,
 * skewed dataset at scale 5: 13.6 instead of 16.6 CPU seconds), so the
 * threshold is the same on every route. (Both parameters stay, for callers
 * that pass the route.)
 */
export function defaultStreamMinBytes(_source: PgTarget, _target: PgTarget): number {
  return DEFAULT_STREAM_MIN_BYTES;
}
/** Head-room on top of the estimated dump size before the disk check passes. */
export const DISK_MARGIN = 1.1;
/** How long the swap waits for sessions on the database to end before giving up (and changing nothing). */
export const TERMINATE_TIMEOUT_MS = 30_000;
