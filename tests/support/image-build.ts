/**
 * Builds what the production image holds, without a Docker engine: the build context is the
 * repository less what `.dockerignore` drops, and each stage of the Dockerfile runs in a
 * directory of its own (standing in for its WORKDIR), where its COPY lines place files from
 * that context or an earlier stage and its RUN lines run with only the stage's ENV.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface DockerIgnoreRule {
  exclude: boolean;
  pattern: RegExp;
}

/** `.dockerignore` rules in order; the last rule matching a path (or one of its parents) decides. */
export function parseDockerignore(text: string): DockerIgnoreRule[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const exclude = !line.startsWith('!');
      const glob = path.posix.normalize((exclude ? line : line.slice(1)).replace(/^\/+/, ''));
      return { exclude, pattern: globToRegExp(glob) };
    });
}

/** Docker's patterns are anchored at the context root: `*` stays within one path segment, `**` spans any. */
function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i] ?? '';
    if (char === '*' && glob[i + 1] === '*') {
      source += '.*';
      i++;
      if (glob[i + 1] === '/') i++;
    } else if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

export function isIgnored(relativePath: string, rules: DockerIgnoreRule[]): boolean {
  const segments = relativePath.split('/');
  const candidates = segments.map((_, i) => segments.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const rule of rules) {
    if (candidates.some((candidate) => rule.pattern.test(candidate))) ignored = rule.exclude;
  }
  return ignored;
}

/** Every file Docker would send as the build context, as paths relative to `root`. */
export function buildContextFiles(root: string): string[] {
  const rules = parseDockerignore(readFileSync(path.join(root, '.dockerignore'), 'utf8'));
  // With an exception rule an ignored directory may still hold files that go in.
  const mayPrune = rules.every((rule) => rule.exclude);
  const files: string[] = [];
  const walk = (relativeDir: string): void => {
    for (const entry of readdirSync(path.join(root, relativeDir), { withFileTypes: true })) {
      const relative = relativeDir ? `${relativeDir}/${entry.name}` : entry.name;
      const ignored = isIgnored(relative, rules);
      const isDirectory = entry.isDirectory() || (entry.isSymbolicLink() && statSync(path.join(root, relative)).isDirectory());
      if (isDirectory) {
        if (!(ignored && mayPrune)) walk(relative);
      } else if (!ignored) {
        files.push(relative);
      }
    }
  };
  walk('');
  return files.sort();
}

export type Instruction = { keyword: string; args: string };

/** The Dockerfile's instructions, continuation lines joined, comments and parser directives dropped. */
export function parseDockerfile(text: string): Instruction[] {
  const joined = text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => {
      const [keyword = '', ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
}

export interface Stage {
  name: string;
  /** Stands in for the stage's WORKDIR. */
  dir: string;
  workdir: string;
  env: Record<string, string>;
  /** The RUN commands, in order, as run. */
  commands: string[];
  cmd?: string[];
}

export interface ImageBuild {
  contextFiles: string[];
  stages: Stage[];
  /** The last stage: what the image is. */
  image: Stage;
}

export interface ImageBuildOptions {
  root: string;
  /** Scratch directory for the stages and the package cache. */
  outDir: string;
  /**
   * An npm cache (`npm config get cache`) to start the build's own cache from, read-only; without
   * it the build's cache starts empty, as a fresh Docker builder's does.
   */
  seedNpmCache?: string;
  /** Called before each RUN, e.g. to log progress. */
  onRun?: (stage: string, command: string) => void;
}

/**
 * Runs the Dockerfile's stages in order. ARG, EXPOSE, USER and LABEL change nothing a process
 * here can observe; any other instruction this does not know fails the build, so the Dockerfile
 * cannot outgrow what is checked.
 */
export async function buildImage({ root, outDir, seedNpmCache, onRun }: ImageBuildOptions): Promise<ImageBuild> {
  const contextFiles = buildContextFiles(root);
  const stages: Stage[] = [];
  // One package cache for every stage, the build's own: a stage may clean it (`npm cache clean`).
  const npmCache = path.join(outDir, 'npm-cache');
  const seeded = seedNpmCache !== undefined && seedCache(seedNpmCache, npmCache);
  const home = path.join(outDir, 'home');
  mkdirSync(home, { recursive: true });
  // The image's PATH has no node_modules/.bin of the repository; `npm run` adds the stage's own.
  const PATH = (process.env.PATH ?? '/usr/bin:/bin')
    .split(path.delimiter)
    .filter((dir) => !dir.includes('node_modules'))
    .join(path.delimiter);
  let stage: Stage | undefined;
  for (const { keyword, args } of parseDockerfile(readFileSync(path.join(root, 'Dockerfile'), 'utf8'))) {
    if (keyword === 'FROM') {
      const name = /\sAS\s+(\S+)$/i.exec(args)?.[1] ?? `stage-${stages.length}`;
      stage = { name, dir: path.join(outDir, 'stages', name), workdir: '/', env: {}, commands: [] };
      mkdirSync(stage.dir, { recursive: true });
      stages.push(stage);
      continue;
    }
    if (['ARG', 'EXPOSE', 'USER', 'LABEL'].includes(keyword)) continue;
    if (!stage) throw new Error(`${keyword} before FROM`);
    switch (keyword) {
      case 'WORKDIR':
        stage.workdir = args;
        break;
      case 'ENV':
        for (const [, name = '', value = ''] of args.matchAll(/(\w+)=(\S+)/g)) stage.env[name] = value;
        break;
      case 'COPY':
        copy(stage, args, { root, contextFiles, stages });
        break;
      case 'RUN': {
        onRun?.(stage.name, args);
        stage.commands.push(args);
        await run('/bin/sh', ['-c', args], {
          cwd: stage.dir,
          env: {
            PATH,
            HOME: home,
            ...networkSettings(),
            npm_config_cache: npmCache,
            // From a seeded cache: what it holds is used without asking the registry whether it
            // changed; `npm ci` still checks every tarball against the lockfile's integrity, and
            // fetches what the cache lacks.
            ...(seeded && { npm_config_prefer_offline: 'true' }),
            ...stage.env,
          },
          maxBuffer: 64 * 1024 * 1024,
        });
        break;
      }
      case 'CMD':
        stage.cmd = JSON.parse(args) as string[];
        break;
      default:
        throw new Error(`the image build does not know the Dockerfile instruction ${keyword}`);
    }
  }
  const image = stages[stages.length - 1];
  if (!image) throw new Error('the Dockerfile has no stage');
  return { contextFiles, stages, image };
}

/**
 * Starts the build's npm cache from `from` (a cache directory, holding `_cacache`): its content
 * files, which npm never changes once written, as hard links (copies across file systems), its
 * index as copies, since npm appends to an index file in place. Answers whether there was a cache.
 */
function seedCache(from: string, to: string): boolean {
  const source = path.join(from, '_cacache');
  if (!existsSync(path.join(source, 'index-v5'))) return false;
  const walk = (relativeDir: string, place: (file: string, target: string) => void): void => {
    for (const entry of readdirSync(path.join(source, relativeDir), { withFileTypes: true })) {
      const relative = path.join(relativeDir, entry.name);
      if (entry.isDirectory()) walk(relative, place);
      else if (entry.isFile()) {
        const target = path.join(to, '_cacache', relative);
        mkdirSync(path.dirname(target), { recursive: true });
        place(path.join(source, relative), target);
      }
    }
  };
  walk('index-v5', copyFileSync);
  walk('content-v2', (file, target) => {
    try {
      linkSync(file, target);
    } catch {
      copyFileSync(file, target);
    }
  });
  return true;
}

/** How this machine reaches the registry (a proxy, a mirror) is not the image's business, but the build needs it. */
function networkSettings(): Record<string, string> {
  const names = /^(https?_proxy|no_proxy|npm_config_(registry|https?_proxy|noproxy|cafile|strict_ssl))$/i;
  return Object.fromEntries(Object.entries(process.env).filter((entry): entry is [string, string] => names.test(entry[0]) && entry[1] !== undefined));
}

function copy(stage: Stage, args: string, from: { root: string; contextFiles: string[]; stages: Stage[] }): void {
  const words = args.split(/\s+/);
  const flags = words.filter((word) => word.startsWith('--'));
  const [destination = '', ...sources] = words.filter((word) => !word.startsWith('--')).reverse();
  sources.reverse();
  const target = path.join(stage.dir, inWorkdir(stage, destination));
  const intoDirectory = destination.endsWith('/') || sources.length > 1;
  const fromStage = flags.find((flag) => flag.startsWith('--from='))?.slice('--from='.length);
  for (const source of sources) {
    if (fromStage) {
      const earlier = from.stages.find((s) => s.name === fromStage);
      if (!earlier) throw new Error(`COPY --from=${fromStage}: no such stage`);
      const sourcePath = path.join(earlier.dir, inWorkdir(earlier, source));
      cpSync(sourcePath, intoDirectory ? path.join(target, path.basename(source)) : target, { recursive: true });
      continue;
    }
    const relative = path.posix.normalize(source).replace(/\/$/, '');
    const files = from.contextFiles.filter((file) => file === relative || file.startsWith(`${relative}/`));
    if (files.length === 0) throw new Error(`COPY ${source}: not in the build context`);
    for (const file of files) {
      // A directory source copies its contents; a file goes into a directory destination by name.
      const destinationFile =
        file === relative ? (intoDirectory ? path.join(target, path.basename(file)) : target) : path.join(target, file.slice(relative.length + 1));
      mkdirSync(path.dirname(destinationFile), { recursive: true });
      cpSync(path.join(from.root, file), destinationFile);
    }
  }
}

/** A path inside the image, relative to the stage's directory; only paths under WORKDIR exist here. */
function inWorkdir(stage: Stage, imagePath: string): string {
  const absolute = path.posix.resolve(stage.workdir, imagePath);
  const relative = path.posix.relative(stage.workdir, absolute);
  if (relative.startsWith('..')) throw new Error(`${imagePath} lies outside WORKDIR ${stage.workdir}`);
  return relative;
}
