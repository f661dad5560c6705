/**
 * The production stack (docker-compose.yml, Dockerfile, deploy/) checked without a Docker
 * engine: Docker Compose validates and resolves the file, and the resolved services must agree
 * with what the code reads (src/config.ts), listens on, and registers. The namespace job's
 * script runs for real against a Temporal dev server with the same `temporal` CLI it uses.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { parse as parseYaml } from 'yaml';
import { CONFIG_ENV_NAMES, DEFAULTS, loadConfig, loadDatabaseConfig } from '../src/config';
import { namespaceRetentionSeconds } from '../scripts/temporal-namespace';
import { SEARCH_ATTRIBUTES } from '../workflows/messages';
import { buildContextFiles, isIgnored, parseDockerignore } from './support/image-build';
import { startDevServer, temporalCliPath } from './support/stack';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');
const SECRETS = {
  POSTGRES_PASSWORD: 'pg-secret',
  CHECKOUT_DB_PASSWORD: 'app-db-secret',
  PAYMENT_WEBHOOK_SECRET: 'whsec_Y29tcG9zZS10ZXN0LXdlYmhvb2stc2VjcmV0',
  ADMIN_TOKEN: 'admin-token-0123456789abcdef0123456789',
  ORDER_ID_SECRET: 'order-id-secret-0123456789abcdef01234',
};
const APP_SERVICES = ['migrate', 'seed', 'api', 'worker'];
/** Node's own variables the image and compose may set besides the app's config. */
const NODE_RUNTIME_ENV = ['NODE_OPTIONS'];

/** Short syntax `[host_ip:][published:]target[/protocol]`, or the long form. */
type PortSpec = string | { target: number; published?: number | string; host_ip?: string };

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string | number>;
  ports?: PortSpec[];
  network_mode?: string;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  volumes?: (string | { type: string; source: string; target: string })[];
  container_name?: string;
  mem_limit?: string | number;
  stop_grace_period?: string;
  restart?: string;
}

let compose: string[];
let emptyEnvFile: string;

/** Runs Docker Compose on the project's file with only the given variables (no .env, no shell env). */
async function composeRun(args: string[], vars: Record<string, string>): Promise<{ stdout: string; stderr: string }> {
  const [command = 'docker-compose', ...prefix] = compose;
  return run(command, [...prefix, '-f', path.join(ROOT, 'docker-compose.yml'), '--env-file', emptyEnvFile, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: os.tmpdir(), ...vars },
  });
}

let services: Record<string, Service>;

beforeAll(async () => {
  // Installs Debian's docker-compose where missing (CI starts on a fresh machine).
  compose = execFileSync('bash', [path.join(ROOT, 'tests/tools/ensure-docker-compose.sh')], { encoding: 'utf8' })
    .trim()
    .split(' ');
  emptyEnvFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'compose-test-')), 'empty.env');
  writeFileSync(emptyEnvFile, '');
  const { stdout } = await composeRun(['config'], SECRETS);
  services = (parseYaml(stdout) as { services: Record<string, Service> }).services;
}, 300_000);

function service(name: string): Service {
  const found = services[name];
  if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
}

function envOf(name: string): Record<string, string> {
  return Object.fromEntries(Object.entries(service(name).environment ?? {}).map(([k, v]) => [k, String(v)]));
}

function containerPorts(name: string): number[] {
  return (service(name).ports ?? []).map((p) => bindingOf(p).target);
}

/** A port published on the host; hostIp '' is every interface, as Docker binds it by default. */
interface Published {
  service: string;
  hostIp: string;
  published: string;
  target: number;
}

const EVERY_INTERFACE = ['', '0.0.0.0', '::'];

function publishedPorts(resolved: Record<string, Service> = services): Published[] {
  return Object.entries(resolved).flatMap(([name, s]) => (s.ports ?? []).map((port) => ({ service: name, ...bindingOf(port) })));
}

function bindingOf(port: PortSpec): Omit<Published, 'service'> {
  if (typeof port !== 'string') {
    return { hostIp: port.host_ip ?? '', published: String(port.published ?? ''), target: port.target };
  }
  const parts = (port.split('/')[0] ?? '').split(':');
  const target = Number(parts.pop());
  const published = parts.pop() ?? '';
  // An IPv6 host address comes in brackets and was split at its colons.
  return { hostIp: parts.join(':').replace(/^\[(.*)\]$/, '$1'), published, target };
}

/** `service:target` → `hostIp:published`, `*` for every interface. */
function bindings(ports: Published[]): Record<string, string> {
  return Object.fromEntries(
    ports.map((p) => [`${p.service}:${p.target}`, `${EVERY_INTERFACE.includes(p.hostIp) ? '*' : p.hostIp}:${p.published}`]),
  );
}

function heapLimitMiB(nodeOptions: string | undefined): number {
  const match = /--max-old-space-size=(\d+)/.exec(nodeOptions ?? '');
  if (!match?.[1]) throw new Error(`no --max-old-space-size in ${nodeOptions}`);
  return Number(match[1]);
}

function bytesOf(limit: string | number | undefined): number {
  if (typeof limit === 'number') return limit;
  const match = /^(\d+)([kmg]?)b?$/i.exec(limit ?? '');
  if (!match?.[1]) throw new Error(`unreadable memory limit ${limit}`);
  const unit = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30 }[(match[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(match[1]) * unit;
}

describe('docker-compose.yml', () => {
  test('validates with docker-compose config -q', async () => {
    await expect(composeRun(['config', '-q'], SECRETS)).resolves.toBeDefined();
  });

  test('refuses to start while any one secret is missing: secrets have no default', async () => {
    const attempts = Object.keys(SECRETS).map(async (name) => {
      const withoutOne = Object.fromEntries(Object.entries(SECRETS).filter(([k]) => k !== name));
      const outcome = await composeRun(['config', '-q'], withoutOne).then(
        () => 'accepted',
        (error: { stderr?: string }) => error.stderr ?? '',
      );
      return { name, namedInError: outcome.includes(`set ${name}`) };
    });

    expect(await Promise.all(attempts)).toEqual(Object.keys(SECRETS).map((name) => ({ name, namedInError: true })));
  });

  test('holds the whole system', () => {
    expect(Object.keys(services).sort()).toEqual(
      ['api', 'migrate', 'postgres', 'seed', 'temporal', 'temporal-namespace', 'temporal-schema', 'temporal-ui', 'worker'].sort(),
    );
  });

  test('the app services set only variables src/config.ts reads', () => {
    for (const name of APP_SERVICES) {
      const unknown = Object.keys(envOf(name)).filter((k) => !CONFIG_ENV_NAMES.includes(k) && !NODE_RUNTIME_ENV.includes(k));
      expect({ service: name, unknown }).toEqual({ service: name, unknown: [] });
    }
  });

  test('the api and worker environments load as a valid production config; migrate and seed need only the database', () => {
    for (const name of ['api', 'worker']) {
      const config = loadConfig(envOf(name), { heapSizeLimitMiB: heapLimitMiB(envOf(name).NODE_OPTIONS) });
      expect(config.env).toBe('production');
      expect(new URL(config.databaseUrl).hostname).toBe('postgres');
    }
    for (const name of ['migrate', 'seed']) {
      expect(new URL(loadDatabaseConfig(envOf(name)).databaseUrl).hostname).toBe('postgres');
    }
  });

  test('the app database is its own database and role, separate from Temporal’s', () => {
    const appDb = new URL(loadDatabaseConfig(envOf('api')).databaseUrl);
    const temporalDbs = [envOf('temporal').DBNAME, envOf('temporal').VISIBILITY_DBNAME];

    expect(appDb.pathname).toBe('/checkout');
    expect(temporalDbs).toEqual([envOf('temporal-schema').TEMPORAL_DB, envOf('temporal-schema').TEMPORAL_VISIBILITY_DB]);
    expect(temporalDbs).not.toContain('checkout');
    expect(appDb.username).toBe('checkout');
    expect(appDb.username).not.toBe(envOf('temporal').POSTGRES_USER);
    expect(envOf('postgres').CHECKOUT_DB_PASSWORD).toBe(decodeURIComponent(appDb.password));
  });

  test('api, worker and the namespace job agree on address, namespace and task queue', () => {
    const api = loadConfig(envOf('api'), { heapSizeLimitMiB: 384 });
    const worker = loadConfig(envOf('worker'), { heapSizeLimitMiB: 768 });
    const [host, port] = api.temporal.address.split(':');

    expect(worker.temporal).toEqual(api.temporal);
    expect(host).toBe('temporal');
    expect(containerPorts('temporal')).toContain(Number(port));
    expect(envOf('temporal-namespace').TEMPORAL_ADDRESS).toBe(api.temporal.address);
    expect(envOf('temporal-namespace').TEMPORAL_NAMESPACE).toBe(api.temporal.namespace);
    expect(envOf('temporal-ui').TEMPORAL_ADDRESS).toBe(api.temporal.address);
    expect(envOf('temporal-ui').TEMPORAL_DEFAULT_NAMESPACE).toBe(api.temporal.namespace);
  });

  test('the namespace keeps closed workflows as long as the worker keeps closed orders, the contract\'s 90 days by default', () => {
    const worker = loadConfig(envOf('worker'), { heapSizeLimitMiB: 768 });

    expect(worker.retention.retentionSeconds).toBe(DEFAULTS.retentionDays * 86_400);
    expect(worker.retention.eventRetentionSeconds).toBe(DEFAULTS.eventRetentionDays * 86_400);
    expect(Number(envOf('temporal-namespace').RETENTION_DAYS)).toBe(DEFAULTS.retentionDays);
    expect(envOf('temporal-namespace').RETENTION_DAYS).toBe(envOf('worker').RETENTION_DAYS);
  });

  test('the api publishes the port it listens on and its health check asks that port', () => {
    const api = loadConfig(envOf('api'), { heapSizeLimitMiB: 384 });

    expect(containerPorts('api')).toEqual([api.port]);
    expect(service('api').healthcheck?.test.join(' ')).toContain(`127.0.0.1:${api.port}/healthz`);
  });

  test('bindingOf reads every form Docker Compose renders a port in', () => {
    expect(['3000', '8080:3000', '127.0.0.1:8080:3000/tcp', '[::1]:8080:3000'].map(bindingOf)).toEqual([
      { hostIp: '', published: '', target: 3000 },
      { hostIp: '', published: '8080', target: 3000 },
      { hostIp: '127.0.0.1', published: '8080', target: 3000 },
      { hostIp: '::1', published: '8080', target: 3000 },
    ]);
    expect(bindingOf({ target: 3000, published: 8080 })).toEqual({ hostIp: '', published: '8080', target: 3000 });
    expect(bindingOf({ target: 3000, published: '8080', host_ip: '127.0.0.1' })).toEqual({ hostIp: '127.0.0.1', published: '8080', target: 3000 });
  });

  test('only the API faces outside: every other published port binds to 127.0.0.1', () => {
    const api = loadConfig(envOf('api'), { heapSizeLimitMiB: 384 });
    const ports = publishedPorts();

    expect(ports.filter((p) => EVERY_INTERFACE.includes(p.hostIp))).toEqual([
      { service: 'api', hostIp: expect.any(String), published: '3000', target: api.port },
    ]);
    expect(ports.filter((p) => p.service !== 'api' && p.hostIp !== '127.0.0.1')).toEqual([]);
    // The developer doors that remain: the frontend for the `temporal` CLI, and the Web UI.
    expect(bindings(ports)).toEqual({ 'api:3000': '*:3000', 'temporal:7233': '127.0.0.1:7233', 'temporal-ui:8080': '127.0.0.1:8080' });
    expect(Object.entries(services).filter(([, s]) => s.network_mode === 'host').map(([name]) => name)).toEqual([]);
  });

  test('a developer who moves a host port keeps it on 127.0.0.1', async () => {
    const vars = { ...SECRETS, TEMPORAL_HOST_PORT: '17233', TEMPORAL_UI_HOST_PORT: '18080', API_HOST_PORT: '13000' };
    const { stdout } = await composeRun(['config'], vars);
    const moved = publishedPorts((parseYaml(stdout) as { services: Record<string, Service> }).services);

    expect(bindings(moved)).toEqual({ 'api:3000': '*:13000', 'temporal:7233': '127.0.0.1:17233', 'temporal-ui:8080': '127.0.0.1:18080' });
  });

  test('PostgreSQL, the worker and the metrics endpoints of Temporal and the worker publish no port', () => {
    const worker = loadConfig(envOf('worker'), { heapSizeLimitMiB: heapLimitMiB(envOf('worker').NODE_OPTIONS) });
    const temporalMetricsPort = Number(/:(\d+)$/.exec(envOf('temporal').PROMETHEUS_ENDPOINT ?? '')?.[1]);
    const published = publishedPorts();

    expect(temporalMetricsPort).toBe(8000);
    expect(worker.worker.metricsPort).toBe(9464);
    expect(published.filter((p) => ['postgres', 'worker'].includes(p.service))).toEqual([]);
    expect(published.filter((p) => [temporalMetricsPort, worker.worker.metricsPort, 5432].includes(p.target))).toEqual([]);
  });

  test('the Web UI is read-only (no Signal, Terminate, Reset, Start) unless an operator opts in', async () => {
    expect(envOf('temporal-ui').TEMPORAL_DISABLE_WRITE_ACTIONS).toBe('true');
    const { stdout } = await composeRun(['config'], { ...SECRETS, TEMPORAL_UI_DISABLE_WRITE_ACTIONS: 'false' });
    const ui = (parseYaml(stdout) as { services: Record<string, Service> }).services['temporal-ui'];
    expect(ui?.environment?.TEMPORAL_DISABLE_WRITE_ACTIONS).toBe('false');
  });

  test('api and worker reach Temporal without credentials only because the compose network is declared private', () => {
    for (const name of ['api', 'worker']) {
      const { TEMPORAL_NETWORK_PRIVATE: declared, ...undeclared } = envOf(name);
      const runtime = { heapSizeLimitMiB: heapLimitMiB(envOf(name).NODE_OPTIONS) };

      expect({ service: name, declared }).toEqual({ service: name, declared: 'true' });
      expect(loadConfig(envOf(name), runtime).temporal.tls).toBeUndefined();
      expect(() => loadConfig(undeclared, runtime)).toThrow(/TEMPORAL_ADDRESS temporal:7233 is not local/);
    }
  });

  test('the worker scales out: no fixed container name, no host port', () => {
    const worker = service('worker');

    expect(worker.container_name).toBeUndefined();
    expect(worker.ports ?? []).toEqual([]);
    expect(worker.command).toEqual(['node', 'dist/src/worker.js']);
  });

  test('the worker heap stays inside its container and the cache is sized to that heap', () => {
    const worker = service('worker');
    const heapMiB = heapLimitMiB(envOf('worker').NODE_OPTIONS);
    const config = loadConfig(envOf('worker'), { heapSizeLimitMiB: heapMiB });

    expect(heapMiB * 2 ** 20).toBeLessThanOrEqual(0.8 * bytesOf(worker.mem_limit));
    expect(config.worker.maxCachedWorkflows).toBeGreaterThanOrEqual(10);
    expect(config.worker.maxCachedWorkflows).toBeLessThan(heapMiB);
    const gracePeriodSeconds = Number(/^(\d+)s$/.exec(worker.stop_grace_period ?? '')?.[1]);
    expect(gracePeriodSeconds).toBeGreaterThan(config.worker.shutdownGraceSeconds);
  });

  test('services start in order, each waiting on a health check or a finished one-shot job', () => {
    const order: Record<string, Record<string, string>> = {
      'temporal-schema': { postgres: 'service_healthy' },
      temporal: { 'temporal-schema': 'service_completed_successfully' },
      'temporal-namespace': { temporal: 'service_healthy' },
      'temporal-ui': { temporal: 'service_healthy' },
      migrate: { postgres: 'service_healthy' },
      seed: { migrate: 'service_completed_successfully' },
      api: { migrate: 'service_completed_successfully', 'temporal-namespace': 'service_completed_successfully' },
      worker: { migrate: 'service_completed_successfully', 'temporal-namespace': 'service_completed_successfully' },
    };
    for (const [name, dependencies] of Object.entries(order)) {
      const conditions = Object.fromEntries(
        Object.entries(service(name).depends_on ?? {}).map(([dep, { condition }]) => [dep, condition]),
      );
      expect({ service: name, conditions }).toEqual({ service: name, conditions: dependencies });
      for (const [dependency, condition] of Object.entries(dependencies)) {
        if (condition === 'service_healthy') expect(service(dependency).healthcheck).toBeDefined();
        if (condition === 'service_completed_successfully') expect(service(dependency).restart).toBe('no');
      }
    }
  });

  test('Temporal images are pinned to Server 1.29.x, and the tools match the server', () => {
    const server = /^temporalio\/server:(1\.29\.\d+)$/.exec(service('temporal').image ?? '');
    expect(server).not.toBeNull();
    for (const job of ['temporal-schema', 'temporal-namespace']) {
      expect(service(job).image).toMatch(new RegExp(`^temporalio/admin-tools:${server?.[1]?.replace(/\./g, '\\.')}-`));
    }
    expect(service('temporal-ui').image).toMatch(/^temporalio\/ui:\d+\.\d+\.\d+$/);
    expect(service('postgres').image).toMatch(/^postgres:\d+$/);
  });

  test('the app services share one image built from the Dockerfile', () => {
    const images = new Set(APP_SERVICES.map((name) => service(name).image));
    expect(images.size).toBe(1);
    for (const name of APP_SERVICES) expect(service(name).build).toBeDefined();
  });

  test('every file mounted from the repository exists', () => {
    const mounts = Object.values(services).flatMap((s) =>
      (s.volumes ?? []).map((v) => (typeof v === 'string' ? v.split(':')[0] ?? '' : v.type === 'bind' ? v.source : '')),
    );
    const fromRepo = mounts.filter((source) => source.startsWith('/') || source.startsWith('.'));
    expect(fromRepo.length).toBeGreaterThanOrEqual(4);
    for (const source of fromRepo) expect(existsSync(path.resolve(ROOT, source))).toBe(true);
  });

  test('the namespace job registers exactly the search attributes the workflow upserts', () => {
    const script = readFileSync(path.join(ROOT, 'deploy/temporal/setup-namespace.sh'), 'utf8');
    const registered = Object.fromEntries([...script.matchAll(/--name (\w+) --type (\w+)/g)].map((m) => [m[1], m[2]]));

    expect(registered).toEqual(SEARCH_ATTRIBUTES);
  });

  test('the schema job runs the versioned schemas of both Temporal databases', () => {
    const script = readFileSync(path.join(ROOT, 'deploy/temporal/setup-schema.sh'), 'utf8');

    expect(service('temporal-schema').entrypoint).toEqual(['/bin/sh', '/deploy/setup-schema.sh']);
    expect(script).toContain('postgresql/v12/${pair##*:}');
    expect(script).toMatch(/:temporal" .*:visibility"/);
    expect(envOf('temporal-schema').SQL_PLUGIN).toBe(envOf('temporal').DB);
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const lines = dockerfile.split('\n').filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  const stages = dockerfile.split(/^FROM /m).slice(1);
  const finalStage = stages[stages.length - 1] ?? '';
  const dockerignore = parseDockerignore(readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));

  test('builds in stages and the final stage installs production dependencies only', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(finalStage).toMatch(/npm ci --omit=dev/);
    expect(finalStage).not.toMatch(/npm (ci|install)(?!.*--omit=dev)/);
    expect(finalStage).toMatch(/COPY --from=build \/app\/dist/);
  });

  test('.dockerignore is read as Docker reads it: patterns anchored at the root, `*` within one segment, `!` re-includes', () => {
    const rules = parseDockerignore('# comment\n*.md\nprisma/generated\n**/*.log\ntests\n!tests/keep.ts\n');

    expect(['README.md', 'prisma/generated/client.ts', 'a/b/c.log', 'tests/x.test.ts'].filter((p) => !isIgnored(p, rules))).toEqual([]);
    expect(['docs/api.md', 'prisma/schema.prisma', 'tests/keep.ts', 'src/tests.ts'].filter((p) => isIgnored(p, rules))).toEqual([]);
    const context = buildContextFiles(ROOT);
    expect(context.filter((file) => /^(tests|node_modules|prisma\/generated|dist|\.git)\//.test(file))).toEqual([]);
    expect(context).toEqual(expect.arrayContaining(['package.json', 'src/api/app.ts']));
  });

  test('runs as a non-root user', () => {
    const user = /^USER\s+(\S+)/m.exec(finalStage)?.[1];
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
  });

  test('every file it copies from the context exists and is not excluded by .dockerignore', () => {
    const sources = lines
      .filter((l) => /^COPY\s/.test(l) && !/--from=/.test(l))
      .flatMap((l) => l.replace(/^COPY\s+(--\S+\s+)*/, '').split(/\s+/).slice(0, -1));
    expect(sources).toEqual(expect.arrayContaining(['package-lock.json', 'src', 'workflows', 'prisma/migrations']));
    for (const source of sources) {
      expect(existsSync(path.join(ROOT, source))).toBe(true);
      expect({ source, ignored: isIgnored(source, dockerignore) }).toEqual({ source, ignored: false });
    }
  });

  test('the commands it and compose run are compiled entries of sources tsc builds', () => {
    const tsconfig = JSON.parse(readFileSync(path.join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
    const commands = [
      ...APP_SERVICES.map((name) => service(name).command?.join(' ') ?? ''),
      /^CMD\s+(.*)$/m.exec(finalStage)?.[1] ?? '',
      ...lines.filter((l) => l.includes('node dist/')),
    ];
    const entries = commands.flatMap((c) => [...c.matchAll(/dist\/([\w/.-]+)\.js/g)].map((m) => m[1] ?? ''));
    const sourceEntries = entries.filter((e) => e !== 'workflow-bundle');
    expect(sourceEntries).toEqual(
      expect.arrayContaining(['src/api/server', 'src/worker', 'scripts/migrate', 'prisma/seed', 'scripts/build-workflow-bundle']),
    );
    for (const entry of sourceEntries) {
      expect(existsSync(path.join(ROOT, `${entry}.ts`))).toBe(true);
      expect(tsconfig.include).toContain(entry.split('/')[0]);
    }
  });

  test('the worker loads the bundle the build writes, and the image sets only known variables', () => {
    const env = Object.fromEntries([...finalStage.matchAll(/^ENV\s+(\w+)=(\S+)/gm)].map((m) => [m[1], m[2]]));
    const bundleOutput = /build-workflow-bundle\.js\s+(\S+)/.exec(dockerfile)?.[1];

    expect(env.WORKER_WORKFLOW_BUNDLE_PATH).toBe(`/app/${bundleOutput}`);
    expect(env.NODE_ENV).toBe('production');
    for (const name of Object.keys(env)) expect([...CONFIG_ENV_NAMES, ...NODE_RUNTIME_ENV]).toContain(name);
  });

  test('exposes the port the API listens on by default', () => {
    expect(/^EXPOSE\s+(\d+)/m.exec(finalStage)?.[1]).toBe(String(loadConfig({}, { heapSizeLimitMiB: 768 }).port));
  });
});

describe('the namespace job against a real Temporal server', () => {
  let server: TestWorkflowEnvironment;

  beforeAll(async () => {
    server = await startDevServer();
  });

  afterAll(async () => {
    await server?.teardown();
  });

  async function runNamespaceJob(namespace: string, retentionDays: number = DEFAULTS.retentionDays): Promise<string> {
    const { stdout } = await run('/bin/sh', [path.join(ROOT, 'deploy/temporal/setup-namespace.sh')], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: os.tmpdir(),
        TEMPORAL_CLI: temporalCliPath(),
        TEMPORAL_ADDRESS: server.address,
        TEMPORAL_NAMESPACE: namespace,
        RETENTION_DAYS: String(retentionDays),
      },
    });
    return stdout;
  }

  test('creates the namespace with the search attributes, and a second run changes nothing', async () => {
    const namespace = `checkout-compose-${Date.now()}`;

    await runNamespaceJob(namespace);
    const rerun = await runNamespaceJob(namespace);

    expect(rerun).toContain(`${namespace} exists`);
    const { customAttributes } = await server.client.connection.operatorService.listSearchAttributes({ namespace });
    const expected = Object.fromEntries(
      Object.entries(SEARCH_ATTRIBUTES).map(([name, type]) => [
        name,
        encodeSearchAttributeIndexedValueType(type === 'Keyword' ? 'KEYWORD' : 'DATETIME'),
      ]),
    );
    expect(customAttributes).toEqual(expected);
    expect(await namespaceRetentionSeconds(server.client.connection, namespace)).toBe(DEFAULTS.retentionDays * 86_400);
  }, 120_000);

  test('sets the retention to RETENTION_DAYS on every run, also of a namespace that exists', async () => {
    const namespace = `checkout-compose-retention-${Date.now()}`;

    await runNamespaceJob(namespace, 30);
    const created = await namespaceRetentionSeconds(server.client.connection, namespace);
    await runNamespaceJob(namespace, 120);

    expect(created).toBe(30 * 86_400);
    expect(await namespaceRetentionSeconds(server.client.connection, namespace)).toBe(120 * 86_400);
  }, 120_000);
});
