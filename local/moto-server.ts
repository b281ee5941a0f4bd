/**
 * A throwaway `moto_server` (AWS APIs on loopback): Secrets Manager for the
 * tests and the rehearsal. Not shipped (the runner bundle never imports it).
 *
 *   const moto = await startMoto();
 *   const rds = new RDSClient({ ...motoClientConfig(moto.endpoint) });
 *   ...
 *   await moto.stop();
 *
 * `test/moto.ts` re-exports it for the tests.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as http from 'node:http';
import * as net from 'node:net';

export interface MotoServer {
  /** `http://127.0.0.1:<port>`, for a client's `endpoint` or `AWS_ENDPOINT_URL`. */
  readonly endpoint: string;
  readonly port: number;
  /** Forgets every resource moto holds, so tests sharing one server start clean. */
  reset(): Promise<void>;
  /** Stops the server and waits for the process to exit. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartMotoOptions {
  /** How long to wait for the port to answer. @default 30 seconds */
  readonly readyTimeoutMs?: number;
}

/**
 * Environment every test that talks to AWS SDK v3 needs: dummy credentials, a
 * region, and no EC2 metadata lookups (which hang without a metadata endpoint).
 */
export const DUMMY_AWS_ENV = {
  AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'moto-dummy-secret',
  AWS_REGION: 'us-east-1',
  AWS_EC2_METADATA_DISABLED: 'true',
} as const;

/** SDK v3 client configuration that points at a moto endpoint with dummy credentials. */
export function motoClientConfig(endpoint: string) {
  return {
    endpoint,
    region: DUMMY_AWS_ENV.AWS_REGION,
    credentials: { accessKeyId: DUMMY_AWS_ENV.AWS_ACCESS_KEY_ID, secretAccessKey: DUMMY_AWS_ENV.AWS_SECRET_ACCESS_KEY },
    maxAttempts: 1,
  };
}

const PORT_ATTEMPTS = 3;

export async function startMoto(options: StartMotoOptions = {}): Promise<MotoServer> {
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  let lastError: unknown;
  // A free port can be taken between probing and moto binding it; try another.
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    const port = await freeLoopbackPort();
    try {
      return await launch(port, readyTimeoutMs);
    } catch (err) {
      lastError = err;
    }
  }
  throw new Error(`moto_server did not start after ${PORT_ATTEMPTS} attempts: ${String(lastError)}`);
}

async function launch(port: number, readyTimeoutMs: number): Promise<MotoServer> {
  // Own process group, so stop() also ends anything the pyenv shim or werkzeug forks.
  const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // spawn errors (moto_server not on PATH) arrive as an event, not a throw.
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
  spawnError.catch(() => undefined);

  // A jest worker or rehearsal that dies without calling stop() must not leave moto behind.
  const killOnExit = () => killGroup(child, 'SIGKILL');
  process.once('exit', killOnExit);

  const endpoint = `http://127.0.0.1:${port}`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', killOnExit);
    if (child.exitCode !== null || child.signalCode !== null) return;
    killGroup(child, 'SIGTERM');
    const forced = setTimeout(() => killGroup(child, 'SIGKILL'), 5_000);
    await exited;
    clearTimeout(forced);
  };

  try {
    await Promise.race([
      waitUntilAnswering(endpoint, readyTimeoutMs),
      spawnError,
      exited.then(() => {
        throw new Error(`moto_server exited before answering on port ${port}: ${stderr.trim()}`);
      }),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    endpoint,
    port,
    // Generous: on a loaded 2-core machine a reset can take seconds.
    reset: () => request(`${endpoint}/moto-api/reset`, 'POST', 30_000),
    stop,
  };
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('could not read the probed port'))));
    });
  });
}

async function waitUntilAnswering(endpoint: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await request(`${endpoint}/moto-api/data.json`, 'GET', 2_000);
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        throw new Error(`moto_server did not answer at ${endpoint} within ${timeoutMs} ms: ${String(err)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function request(url: string, method: 'GET' | 'POST', timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, timeout: timeoutMs }, (res) => {
      res.resume();
      res.once('end', () => {
        if (res.statusCode !== undefined && res.statusCode < 500) resolve();
        else reject(new Error(`${method} ${url} answered ${res.statusCode}`));
      });
    });
    req.once('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.once('error', reject);
    req.end();
  });
}
