/**
 * The shape of the code, checked: no import circle among the project's modules, and no shipped
 * file over 400 lines unless its opening comment says why ("Over 400 lines: …"). Plain file
 * reads, no server.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const ROOT = path.resolve(__dirname, '..');
/** What is compiled into the image (scripts/ too) and the test support code. */
const SHIPPED = ['src', 'activities', 'workflows', 'scripts'];
const CHECKED = [...SHIPPED, 'tests/support', 'tests/tools'];
const MAX_LINES = 400;
const LENGTH_REASON = /Over 400 lines: \S/;

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'generated' || entry.name === 'node_modules' ? [] : tsFiles(file);
    return entry.name.endsWith('.ts') ? [file] : [];
  });
}

/** The project files `file` imports (type-only imports too: they tie the modules as much). */
function localImports(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, false);
  const specifiers = source.statements.flatMap((s) =>
    (ts.isImportDeclaration(s) || ts.isExportDeclaration(s)) && s.moduleSpecifier && ts.isStringLiteral(s.moduleSpecifier) ? [s.moduleSpecifier.text] : [],
  );
  return specifiers
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => path.resolve(path.dirname(file), spec))
    .map((target) => [`${target}.ts`, path.join(target, 'index.ts')].find((candidate) => existsSync(candidate)))
    .filter((target): target is string => target !== undefined);
}

/** Every import circle in `graph`, each as the files that make it, in order. */
export function importCircles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const circles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const trail: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    trail.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open') circles.push(trail.slice(trail.indexOf(next)));
      else if (!state.has(next)) visit(next);
    }
    trail.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return circles;
}

test('no module imports itself through others', () => {
  const files = CHECKED.flatMap((dir) => tsFiles(path.join(ROOT, dir)));
  const graph = new Map(files.map((file) => [file, localImports(file)]));
  const circles = importCircles(graph).map((circle) => circle.map((f) => path.relative(ROOT, f)).join(' → '));
  expect(circles).toEqual([]);
});

test('the circle check finds a circle, through type imports too', () => {
  const graph = new Map([
    ['floor.ts', ['scenarios.ts']],
    ['scenarios.ts', ['stats.ts', 'floor.ts']],
    ['stats.ts', []],
  ]);
  expect(importCircles(graph)).toEqual([['floor.ts', 'scenarios.ts']]);
  expect(importCircles(new Map([['a.ts', ['b.ts']], ['b.ts', []]]))).toEqual([]);
});

test(`no shipped file over ${MAX_LINES} lines without the reason at its top`, () => {
  const unexplained = SHIPPED.flatMap((dir) => tsFiles(path.join(ROOT, dir)))
    .map((file) => ({ file, text: readFileSync(file, 'utf8') }))
    .filter(({ text }) => text.split('\n').length > MAX_LINES && !LENGTH_REASON.test(text.split('\n').slice(0, 30).join('\n')))
    .map(({ file }) => path.relative(ROOT, file));
  expect(unexplained).toEqual([]);
});
