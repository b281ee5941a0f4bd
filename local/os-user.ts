/**
 * Who runs the server-side PostgreSQL binaries locally: initdb refuses root,
 * so as root they run as the `postgres` user (runuser) and own their files.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

let postgresIds: { uid: number; gid: number } | undefined;
export async function postgresUser(): Promise<{ uid: number; gid: number }> {
  if (!postgresIds) {
    const uid = Number((await execFileAsync('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await execFileAsync('id', ['-g', 'postgres'])).stdout.trim());
    postgresIds = { uid, gid };
  }
  return postgresIds;
}
