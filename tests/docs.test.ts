/**
 * The docs stay true: docs/api.md names the same routes and error codes as the OpenAPI
 * document the API serves (built from the schemas it validates with), and nothing in the
 * repository points outside it, so a user of the project has everything it refers to.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { buildOpenApiDocument } from '../src/api/openapi';
import { ERROR_STATUS } from '../src/api/errors';

const ROOT = path.resolve(__dirname, '..');
/** docs/api.md: the whole surface that runs. */
function implementedApiDoc(): string {
  return readFileSync(path.join(ROOT, 'docs/api.md'), 'utf8');
}

const CODE = /`([A-Z][A-Z0-9_]{2,})`/g;

describe('docs/api.md and /openapi.json', () => {
  const document = buildOpenApiDocument();
  const operations = Object.entries(document.paths ?? {}).flatMap(([route, item]) =>
    Object.entries(item as Record<string, { responses?: Record<string, { description?: string }> }>).map(([method, operation]) => ({
      route: `${method.toUpperCase()} ${route.replace(/\{(\w+)\}/g, ':$1')}`,
      responses: operation.responses ?? {},
    })),
  );

  test('name the same routes', () => {
    const documented = [...implementedApiDoc().matchAll(/^### (GET|POST|PUT|PATCH|DELETE) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`);

    expect(documented.sort()).toEqual(operations.map((o) => o.route).sort());
  });

  test('name the same error codes, each with the status the API answers it with', () => {
    const table = [...implementedApiDoc().matchAll(/^\| `([A-Z][A-Z0-9_]+)` \| (\d{3}) \|/gm)].map((m) => ({ code: m[1] ?? '', status: Number(m[2]) }));
    const inOpenApi = new Set<string>();
    for (const { responses } of operations) {
      for (const [status, response] of Object.entries(responses)) {
        if (Number(status) >= 400) for (const m of (response.description ?? '').matchAll(CODE)) inOpenApi.add(m[1] ?? '');
      }
    }
    // The codes any route may answer are stated once, in the document's description.
    for (const m of (document.info.description ?? '').matchAll(CODE)) inOpenApi.add(m[1] ?? '');

    expect(table.map((row) => row.code).sort()).toEqual([...inOpenApi].sort());
    for (const { code, status } of table) {
      expect({ code, status }).toEqual({ code, status: ERROR_STATUS[code as keyof typeof ERROR_STATUS] });
    }
  });
});

describe('docs/security.md', () => {
  const threatModel = readFileSync(path.join(ROOT, 'docs/security.md'), 'utf8');
  /** Every `tests/x.test.ts` › "name" "name" … the table cites. */
  const citations = [...threatModel.matchAll(/`(tests\/[\w/.-]+\.test\.ts)` › ((?:"[^"]+"(?:, | and |,? )?)+)/g)].flatMap((m) =>
    [...(m[2] ?? '').matchAll(/"([^"]+)"/g)].map((name) => ({ file: m[1] ?? '', name: name[1] ?? '' })),
  );

  test('every test name it cites is a test in the file it names', () => {
    const missing = citations.filter(({ file, name }) => {
      const source = existsSync(path.join(ROOT, file)) ? readFileSync(path.join(ROOT, file), 'utf8') : '';
      // Titles are string literals in the source: compare with their escaped apostrophes undone.
      return !source.replace(/\\'/g, "'").includes(`'${name}'`);
    });

    expect(citations.length).toBeGreaterThanOrEqual(15);
    expect(missing).toEqual([]);
  });

  test('has a row for each entry point, each row saying who, how, what an attacker could do, and the proof', () => {
    const rows = threatModel.split('\n').filter((line) => line.startsWith('| **'));
    const entryPoints = [
      'Storefront API', 'Operator API', '/webhooks/payments', '/webhooks/stripe', 'Temporal frontend',
      'Web UI', 'PostgreSQL', '/metrics', 'ORDER_EVENTS_URL', 'GET /admin/events',
    ];

    expect(entryPoints.filter((entryPoint) => !rows.some((row) => row.split(' | ')[0]?.includes(entryPoint)))).toEqual([]);
    expect(rows.filter((row) => row.split(' | ').length !== 5)).toEqual([]);
  });
});

describe('the repository stands on its own', () => {
  const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((file) => file !== '' && existsSync(path.join(ROOT, file)));
  const textOf = (file: string): string | undefined => {
    const content = readFileSync(path.join(ROOT, file));
    return content.includes(0) ? undefined : content.toString('utf8');
  };

  test('no tracked file points at the workspace around it', () => {
    const outside = [/\.\.\/shared\b/, /(^|[\s"'`(=:])\/work\//m];
    const offenders = tracked
      // Recorded histories hold the recording machine's stack traces (data, not references);
      // this file holds the patterns themselves.
      .filter((file) => !file.startsWith('tests/histories/') && file !== 'tests/docs.test.ts')
      .filter((file) => {
        const text = textOf(file);
        return text !== undefined && outside.some((pattern) => pattern.test(text));
      });

    expect(offenders).toEqual([]);
  });

  test('every relative link in the Markdown files leads to a file in the repository', () => {
    const broken = tracked
      .filter((file) => file.endsWith('.md'))
      .flatMap((file) =>
        [...(textOf(file) ?? '').matchAll(/\]\(([^)\s]+)\)/g)]
          .map((m) => m[1] ?? '')
          .filter((target) => !/^([a-z]+:|#)/i.test(target))
          .map((target) => ({ file, target, resolved: path.resolve(ROOT, path.dirname(file), target.split('#')[0] ?? '') }))
          .filter(({ resolved }) => !resolved.startsWith(`${ROOT}${path.sep}`) || !existsSync(resolved))
          .map(({ file: from, target }) => `${from} → ${target}`),
      );

    expect(broken).toEqual([]);
  });

  test('every #anchor in a Markdown link names a heading of the file it points at', () => {
    const markdown = tracked.filter((file) => file.endsWith('.md'));
    const broken = markdown.flatMap((file) =>
      [...(textOf(file) ?? '').matchAll(/\]\(([^)\s]*#[^)\s]+)\)/g)]
        .map((m) => m[1] ?? '')
        .filter((target) => !/^[a-z]+:/i.test(target))
        .filter((target) => {
          const [targetFile = '', anchor = ''] = target.split('#');
          const linked = targetFile === '' ? file : path.relative(ROOT, path.resolve(ROOT, path.dirname(file), targetFile));
          return markdown.includes(linked) && !headingAnchors(textOf(linked) ?? '').has(anchor);
        })
        .map((target) => `${file} → ${target}`),
    );

    expect(broken).toEqual([]);
  });
});

/**
 * The anchors GitHub gives a file's headings: the text without its Markdown, lowercased, every
 * character but letters, digits, spaces, hyphens and underscores dropped, spaces made hyphens; a
 * repeated anchor gets -1, -2, ...
 */
function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let inFence = false;
  for (const line of markdown.split('\n')) {
    if (/^(```|~~~)/.test(line)) inFence = !inFence;
    const heading = inFence ? null : /^#{1,6} (.+)$/.exec(line);
    if (!heading?.[1]) continue;
    const text = heading[1].replace(/\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/[`*]/g, '');
    const anchor = text.trim().toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
    const times = seen.get(anchor) ?? 0;
    seen.set(anchor, times + 1);
    anchors.add(times === 0 ? anchor : `${anchor}-${times}`);
  }
  return anchors;
}
