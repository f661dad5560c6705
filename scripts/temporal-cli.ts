/**
 * Finds or installs the Temporal CLI (dev server + Web UI). Order: TEMPORAL_CLI_PATH,
 * `temporal` on PATH, the project's cached copy, then `go install` of the pinned version
 * into that cache. Run directly (`npm run temporal:install`) it prints the binary's path.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The one place the CLI version is pinned: v1.5.1 = Temporal Server 1.29.1, UI 2.42.1. */
export const TEMPORAL_CLI_VERSION = 'v1.5.1';
const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';

export function temporalCliCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache');
  return path.join(base, 'checkout-service', `temporal-cli-${TEMPORAL_CLI_VERSION}`);
}

export function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, command))) return path.join(dir, command);
  }
  return undefined;
}

export interface TemporalCli {
  path: string;
  source: 'TEMPORAL_CLI_PATH' | 'PATH' | 'cache' | 'go install';
}

export function findTemporalCli(): TemporalCli | undefined {
  const explicit = process.env.TEMPORAL_CLI_PATH;
  if (explicit) {
    if (!isExecutable(explicit)) throw new Error(`TEMPORAL_CLI_PATH=${explicit} is not an executable file`);
    return { path: explicit, source: 'TEMPORAL_CLI_PATH' };
  }
  const fromPath = onPath('temporal');
  if (fromPath) return { path: fromPath, source: 'PATH' };
  const cached = path.join(temporalCliCacheDir(), 'temporal');
  if (isExecutable(cached)) return { path: cached, source: 'cache' };
  return undefined;
}

/** Returns the CLI, building it with the Go toolchain the first time (a few minutes). */
export function ensureTemporalCli(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): TemporalCli {
  const found = findTemporalCli();
  if (found) return found;
  const go = process.env.GO ?? onPath('go') ?? (isExecutable('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);
  if (!go) {
    throw new Error(
      'Temporal CLI not found: set TEMPORAL_CLI_PATH, put `temporal` on PATH, or install Go so it can be built',
    );
  }
  const dir = temporalCliCacheDir();
  mkdirSync(dir, { recursive: true });
  log(`installing Temporal CLI ${TEMPORAL_CLI_VERSION} with go install into ${dir} (first time only, takes minutes)`);
  if (!goInstall(go, [`${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}`], dir)) throw new Error(`go install ${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION} failed`);
  return { path: path.join(dir, 'temporal'), source: 'go install' };
}

/** `go install` of pinned modules into `dir` (trimmed paths), its output on ours; true when it succeeded. */
export function goInstall(go: string, modules: string[], dir: string): boolean {
  const result = spawnSync(go, ['install', ...modules], {
    env: { ...process.env, GOBIN: dir, GOFLAGS: [process.env.GOFLAGS, '-trimpath'].filter(Boolean).join(' ') },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return result.status === 0;
}

export function temporalCliVersion(cliPath: string): string {
  return execFileSync(cliPath, ['--version'], { encoding: 'utf8' }).trim();
}

if (require.main === module) {
  const cli = ensureTemporalCli();
  process.stdout.write(`${cli.path}\n`);
  process.stderr.write(`${temporalCliVersion(cli.path)} (found via ${cli.source})\n`);
}
