/**
 * What CodeBuild does with the synthesized project, on this machine: copy
 * the source (the staged runner asset) into a fresh directory, read its
 * buildspec.yml, and run the phases' commands with bash in one shell, each
 * judged by its exit status, with the project's environment plus the
 * build's overrides and the variables CodeBuild itself sets.
 *
 * The install phase runs as written, with two changes (see
 * INSTALL_ADAPTATIONS): `install-client.sh` finds stub `dnf` and `curl` first
 * on PATH (they record their arguments, dnf the repository files and dnf
 * variables it was given; curl answers the CDN probe as `install.cdnReachable`
 * says; dnf installs nothing, this machine's PostgreSQL client is already on
 * PATH), and the asset's `rds-ca-bundle.pem` is replaced by the stand-in's
 * test CA. `runner.js client-major` asks the RDS stand-in, as it asks RDS.
 * The build phase runs unchanged. Not a test file.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { pgBinDir } from '../../local/cluster';

interface Buildspec {
  readonly version: number | string;
  readonly env?: { readonly shell?: string };
  readonly phases: Record<string, { readonly 'commands'?: readonly string[]; readonly 'on-failure'?: string }>;
}

/** How each install command is handled here, matched by its text. Any install command not listed fails the build: a changed buildspec needs a look. */
export const INSTALL_ADAPTATIONS: ReadonlyArray<{ readonly match: RegExp; readonly action: 'run' | 'skip'; readonly why: string }> = [
  { match: /^echo "\[install\]/, action: 'run', why: 'log line' },
  { match: /^bash install-client\.sh$/, action: 'run', why: 'chooses and installs the PostgreSQL client; runs as written, with stub dnf and curl first on PATH' },
  { match: /cp rds-ca-bundle\.pem/, action: 'run', why: 'installs the RDS CA bundle shipped in the runner asset; runs as written, the asset\'s bundle replaced by the stand-in\'s test CA' },
];

/** What the stub `dnf` and `curl` do in the install phase. */
export interface InstallStubs {
  /** Whether the probe of cdn.amazonlinux.com answers. @default true */
  readonly cdnReachable?: boolean;
  /** dnf's exit status. @default 0 */
  readonly dnfExit?: number;
}

/** One call of a stub: its arguments; for dnf, the `.repo` files of a `--setopt=reposdir=` and the dnf variables it found. */
export interface StubCall {
  readonly tool: 'dnf' | 'curl';
  readonly args: readonly string[];
  readonly repoFiles: Readonly<Record<string, string>>;
  readonly vars: Readonly<Record<string, string>>;
}

/**
 * The stubs record each call as one JSON line (node is on PATH: the build runs the runner with it).
 * `PITR_STUB_*` variables are the stand-in's, not the buildspec's.
 */
const STUB_RECORDER = `
const fs = require('node:fs');
const path = require('node:path');
const [tool, ...args] = process.argv.slice(2);
const readDir = (dir, filter) => {
  const out = {};
  try { for (const f of fs.readdirSync(dir)) if (filter(f)) out[f] = fs.readFileSync(path.join(dir, f), 'utf8'); } catch {}
  return out;
};
const reposdir = args.find((a) => a.startsWith('--setopt=reposdir='));
const repoFiles = reposdir ? readDir(reposdir.slice('--setopt=reposdir='.length), (f) => f.endsWith('.repo')) : {};
const vars = tool === 'dnf' ? readDir(process.env.PITR_DNF_VARS_DIR || '/nonexistent', () => true) : {};
fs.appendFileSync(process.env.PITR_STUB_LOG, JSON.stringify({ tool, args, repoFiles, vars }) + '\\n');
`;

function writeInstallStubs(work: string, stubs: InstallStubs): { bin: string; log: string; env: Record<string, string> } {
  const bin = join(work, 'stub-bin');
  mkdirSync(bin);
  const log = join(work, 'stub-calls.jsonl');
  writeFileSync(log, '');
  const recorder = join(work, 'stub-recorder.js');
  writeFileSync(recorder, STUB_RECORDER);
  const curlExit = stubs.cdnReachable === false ? 28 : 0;
  writeFileSync(join(bin, 'curl'), `#!/bin/sh\nnode ${JSON.stringify(recorder)} curl "$@" || exit 99\n${curlExit ? 'echo "curl: (28) Connection timed out after 5001 milliseconds" >&2\n' : ''}exit ${curlExit}\n`, { mode: 0o755 });
  writeFileSync(join(bin, 'dnf'), `#!/bin/sh\nnode ${JSON.stringify(recorder)} dnf "$@" || exit 99\necho "(stand-in dnf: nothing installed) $*"\nexit ${stubs.dnfExit ?? 0}\n`, { mode: 0o755 });
  return { bin, log, env: { PITR_STUB_LOG: log, PITR_DNF_VARS_DIR: join(work, 'dnf-vars') } };
}

export interface BuildOptions {
  /** The staged runner asset (runner.js + buildspec.yml). */
  readonly sourceDir: string;
  readonly buildspecFile: string;
  /** Project environment plus overrides plus CodeBuild's own variables. */
  readonly env: Readonly<Record<string, string>>;
  /** What the build finds as the runner asset's RDS CA bundle (`rds-ca-bundle.pem`). */
  readonly caFile: string;
  /** Each output line, as it arrives. */
  readonly onLine?: (line: string) => void;
  /** @default - the CDN answers, dnf succeeds */
  readonly install?: InstallStubs;
}

export interface BuildResult {
  /** CodeBuild's verdict: SUCCEEDED, or FAILED with the phase that failed; STOPPED/KILLED when signalled. */
  readonly status: 'SUCCEEDED' | 'FAILED' | 'SIGNALLED';
  readonly failedPhase?: string;
  readonly exitCode: number | null;
  readonly log: string;
  /** The install phase's calls of the stub dnf and curl, in order. */
  readonly stubCalls: readonly StubCall[];
}

export interface RunningBuild {
  readonly done: Promise<BuildResult>;
  /** Sends `signal` to every process of the build (its own process group), as stopping the container does. */
  signal(signal: NodeJS.Signals): void;
  /** Resolves on the first output line matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

export function startBuild(options: BuildOptions): RunningBuild {
  const work = mkdtempSync(join(tmpdir(), 'pitr-codebuild-'));
  const src = join(work, 'src');
  cpSync(options.sourceDir, src, { recursive: true });
  const spec = load(readFileSync(join(src, options.buildspecFile), 'utf8')) as Buildspec;
  if (String(spec.version) !== '0.2') throw new Error(`buildspec version ${spec.version}: this stand-in reads 0.2`);
  const shell = spec.env?.shell ?? 'sh';

  // The one change to the asset: the stand-in's CA in place of the RDS CA bundle shipped with the runner.
  cpSync(options.caFile, join(src, 'rds-ca-bundle.pem'));

  const lines: string[] = ['set +e'];
  for (const phase of ['install', 'pre_build', 'build', 'post_build']) {
    const commands = spec.phases[phase]?.commands ?? [];
    lines.push(`echo "[Container] Entering phase ${phase.toUpperCase()}"`);
    for (const command of commands) {
      const adaptation = phase === 'install' ? INSTALL_ADAPTATIONS.find((a) => a.match.test(command)) : undefined;
      if (phase === 'install' && !adaptation) {
        lines.push(`echo "[Container] install command not known to the CodeBuild stand-in: ${command.split('\n')[0].replace(/["$`\\]/g, '')}" >&2; exit 90`);
        continue;
      }
      if (adaptation?.action === 'skip') {
        lines.push(`echo "[Container] (stand-in) skipped: ${adaptation.why.replace(/["$`\\]/g, '')}"`);
        continue;
      }
      lines.push(`echo "[Container] Running command ${command.split('\n')[0].replace(/["$`\\]/g, '')}"`);
      lines.push(command);
      lines.push(`__rc=$?; if [ $__rc -ne 0 ]; then echo "[Container] Command did not exit successfully, exit status $__rc"; echo "[Container] Phase ${phase.toUpperCase()} FAILED"; exit $__rc; fi`);
    }
  }
  lines.push('echo "[Container] Phase complete: all phases SUCCEEDED"');
  const script = join(work, 'build.sh');
  writeFileSync(script, `${lines.join('\n')}\n`);

  const pgBin = pgBinDir();
  const stubs = writeInstallStubs(work, options.install ?? {});
  const child: ChildProcess = spawn(shell, [script], {
    cwd: src,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: [stubs.bin, ...(pgBin ? [pgBin] : []), process.env.PATH ?? '/usr/bin:/bin'].join(':'),
      // The runner prefers Debian's /usr/lib/postgresql/<major>/bin to PATH (binaries.ts); on CodeBuild neither
      // exists and PATH decides. Here PG_BIN_DIR keeps the client the harness chose (PG_MAJOR) ahead of Debian's 15.
      ...(pgBin ? { PG_BIN_DIR: pgBin } : {}),
      HOME: work,
      CODEBUILD_SRC_DIR: src,
      ...stubs.env,
      ...options.env,
    },
  });
  const output: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  const closed: Array<Promise<void>> = [];
  const onData = (stream: NodeJS.ReadableStream): void => {
    closed.push(new Promise((resolve) => stream.once('close', () => resolve())));
    let pending = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      pending += chunk;
      const parts = pending.split('\n');
      pending = parts.pop()!;
      for (const line of parts) {
        output.push(line);
        options.onLine?.(line);
        for (const w of [...waiters]) {
          if (w.pattern.test(line)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
    });
  };
  onData(child.stdout!);
  onData(child.stderr!);
  const killOnExit = (): void => groupSignal(child, 'SIGKILL');
  process.once('exit', killOnExit);

  const done = new Promise<BuildResult>((resolve) => {
    child.once('exit', (code, signal) => {
      // The shell may be gone while the runner still cleans up: wait for the whole group.
      // Every process holding the output pipes has exited once they close.
      void Promise.all([waitForGroup(child), ...closed]).then(() => {
        process.removeListener('exit', killOnExit);
        const stubCalls = readFileSync(stubs.log, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as StubCall);
        rmSync(work, { recursive: true, force: true });
        const log = output.join('\n');
        const failed = /\[Container\] Phase (\w+) FAILED/.exec(log);
        resolve({
          status: signal ? 'SIGNALLED' : code === 0 ? 'SUCCEEDED' : 'FAILED',
          failedPhase: failed?.[1],
          exitCode: code,
          log,
          stubCalls,
        });
      });
    });
  });

  return {
    done,
    signal: (signal) => groupSignal(child, signal),
    waitForLine: (pattern, timeoutMs = 120_000) => {
      const seen = output.find((l) => pattern.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no build output line matched ${pattern} within ${timeoutMs} ms; output so far:\n${output.join('\n')}`)), timeoutMs);
        waiters.push({ pattern, resolve: (line) => { clearTimeout(timer); resolve(line); } });
        void done.then(() => {
          clearTimeout(timer);
          reject(new Error(`the build ended before a line matched ${pattern}:\n${output.join('\n')}`));
        });
      });
    },
  };
}

/** Runs a build to its end. */
export function runBuild(options: BuildOptions): Promise<BuildResult> {
  return startBuild(options).done;
}

function groupSignal(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

async function waitForGroup(child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      process.kill(-child.pid!, 0);
    } catch {
      return;
    }
    if (Date.now() > deadline) {
      groupSignal(child, 'SIGKILL');
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
