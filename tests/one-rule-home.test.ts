/**
 * The rule that decides an order has one home: SQL functions whose current text is in sql/
 * (docs/expiry.md, "The rule"). This check fails when shipped TypeScript grows a second copy: a
 * comparison, or a max/min, of anything named like a deadline, or SQL in a TypeScript string that
 * weighs expires_at, payment_pending_until or succeeded_at against a time itself.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const ROOT = path.resolve(__dirname, '..');
/** The code that decides orders (scripts/ wait for processes with deadlines of their own). */
const SHIPPED = ['src', 'activities', 'workflows'];
const DEADLINE_NAME = /expires|deadline|pendingUntil|pending_until|succeeded_?At|heldUntil|held_until/i;
const RELATIONAL = new Set([
  ts.SyntaxKind.LessThanToken,
  ts.SyntaxKind.LessThanEqualsToken,
  ts.SyntaxKind.GreaterThanToken,
  ts.SyntaxKind.GreaterThanEqualsToken,
]);
/** SQL that weighs a deadline column: a comparison next to it, or GREATEST/LEAST over it. */
const SQL_DEADLINE_RULE =
  /(expires_at|payment_pending_until|succeeded_at|held_until)\s*(<|>|<=|>=)|(<|>|<=|>=)\s*(o\.|r\.)?(expires_at|payment_pending_until|succeeded_at|held_until)|(GREATEST|LEAST)\s*\([^)]*(expires_at|payment_pending_until)/i;

function shippedFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'generated' || entry.name === 'node_modules' ? [] : shippedFiles(file);
    return entry.name.endsWith('.ts') ? [file] : [];
  });
}

/** Every place in `source` that restates the rule, as "file:line: text". */
export function ruleCopies(fileName: string, source: string): string[] {
  const sf = ts.createSourceFile(fileName, source, ts.ScriptTarget.ES2022, true);
  const found: string[] = [];
  const report = (node: ts.Node) => {
    const { line } = sf.getLineAndCharacterOfPosition(node.getStart(sf));
    found.push(`${path.relative(ROOT, fileName)}:${line + 1}: ${node.getText(sf).replace(/\s+/g, ' ').slice(0, 120)}`);
  };
  const visit = (node: ts.Node): void => {
    if (ts.isBinaryExpression(node) && RELATIONAL.has(node.operatorToken.kind)) {
      if (DEADLINE_NAME.test(node.left.getText(sf)) || DEADLINE_NAME.test(node.right.getText(sf))) report(node);
    }
    if (ts.isCallExpression(node) && /^Math\.(max|min)$/.test(node.expression.getText(sf))) {
      if (node.arguments.some((a) => DEADLINE_NAME.test(a.getText(sf)))) report(node);
    }
    if (ts.isNoSubstitutionTemplateLiteral(node) || ts.isTemplateHead(node) || ts.isTemplateMiddle(node) || ts.isTemplateTail(node) || ts.isStringLiteral(node)) {
      if (SQL_DEADLINE_RULE.test(node.text)) report(node);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

test('no shipped TypeScript compares a time with a deadline: the rule lives in PostgreSQL only', () => {
  const copies = SHIPPED.flatMap((dir) => shippedFiles(path.join(ROOT, dir))).flatMap((file) => ruleCopies(file, readFileSync(file, 'utf8')));
  expect(copies).toEqual([]);
});

test('the check finds a second copy of the rule, in code and in SQL strings', () => {
  const copies = ruleCopies(
    path.join(ROOT, 'src/example.ts'),
    [
      'const late = Date.parse(order.expiresAt) <= Date.now();',
      'const ends = Math.max(Date.parse(d.expiresAt), Date.parse(d.paymentPendingUntil));',
      'const due = sql`SELECT 1 FROM orders o WHERE o.expires_at <= now()`;',
      "const q = 'SELECT GREATEST(expires_at, payment_pending_until) FROM orders';",
      'const inTime = sql`r.succeeded_at < ${deadline}`;',
    ].join('\n'),
  );
  expect(copies).toHaveLength(5);
  // Arithmetic on a duration is not a rule: the workflow's timer waits as long as the database said.
  expect(ruleCopies(path.join(ROOT, 'src/ok.ts'), 'const wait = Math.max(1, this.remainingMs);')).toEqual([]);
});
