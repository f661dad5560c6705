/** The texts orders show in the Web UI, as pure functions: no server needed. */
import type { OrderView } from '../workflows/messages';
import { describeItems, describeOrder, escapeMarkdown, formatTime, orderDetails } from '../workflows/summaries';

const awaiting: OrderView = {
  orderId: 'o-1',
  customerId: 'ada',
  status: 'AWAITING_PAYMENT',
  items: [
    { sku: 'SKU-1', quantity: 2, unitPriceCents: 2450 },
    { sku: 'SKU-3', quantity: 1, unitPriceCents: 650 },
  ],
  totalCents: 5550,
  createdAt: '2026-11-25T10:00:00.000Z',
  expiresAt: '2026-11-25T10:15:00.000Z',
};

test('one-line item lists name three items and count the rest', () => {
  const items = ['A', 'B', 'C', 'D', 'E'].map((sku, i) => ({ sku, quantity: i + 1 }));

  expect(describeItems(items.slice(0, 3))).toBe('1 × A, 2 × B, 3 × C');
  expect(describeItems(items.slice(0, 4))).toBe('1 × A, 2 × B, 3 × C and 1 more item');
  expect(describeItems(items)).toBe('1 × A, 2 × B, 3 × C and 2 more items');
});

test('times read as the Web UI shows its own, to the second in UTC', () => {
  expect(formatTime('2026-11-25T09:51:40.341Z')).toBe('2026-11-25 09:51:40 UTC');
});

test('caller input in markdown is literal text, never markup', () => {
  expect(escapeMarkdown('*bold* <b>x</b> | [link](u)')).toBe('\\*bold\\* \\<b\\>x\\</b\\> \\| \\[link\\]\\(u\\)');
  expect(orderDetails({ customerId: '**ada**', items: [{ sku: 'A|B', quantity: 1 }], paymentTimeoutSeconds: 60 })).toContain(
    '| A\\|B | 1 |',
  );
});

test('static details list every item, however many', () => {
  const items = Array.from({ length: 12 }, (_, i) => ({ sku: `SKU-${i}`, quantity: 1 }));

  const details = orderDetails({ customerId: 'ada', items, paymentTimeoutSeconds: 900 });

  expect(details).toContain('**Payment window:** 15m from placement');
  expect(details).toContain('| SKU\\-11 | 1 |');
});

test.each<[string, OrderView, string]>([
  ['pending', { ...awaiting, status: 'PENDING' }, '**PENDING**: reserving the stock'],
  ['awaiting payment', awaiting, '**AWAITING_PAYMENT**: 55.50 due by 2026-11-25 10:15:00 UTC'],
  [
    'paid',
    { ...awaiting, status: 'PAID', paymentId: 'pay-1', paidAt: '2026-11-25T10:05:00.000Z', closedAt: '2026-11-25T10:05:00.000Z' },
    '**PAID**: 55.50 paid by payment pay\\-1 at 2026-11-25 10:05:00 UTC; stock sold',
  ],
  ['expiring', { ...awaiting, status: 'EXPIRED' }, '**EXPIRED**: unpaid at 2026-11-25 10:15:00 UTC; releasing the stock'],
  [
    'expired',
    { ...awaiting, status: 'EXPIRED', closedAt: '2026-11-25T10:15:01.000Z' },
    '**EXPIRED**: unpaid at 2026-11-25 10:15:00 UTC; stock released at 2026-11-25 10:15:01 UTC',
  ],
  ['cancelled', { ...awaiting, status: 'CANCELLED', closedAt: '2026-11-25T10:02:00.000Z' }, '**CANCELLED**: stock released at 2026-11-25 10:02:00 UTC'],
  ['rejected', { ...awaiting, status: 'REJECTED', shortages: [{ sku: 'SKU-1', requested: 2, available: 1 }] }, '**REJECTED**: not enough stock; nothing held'],
])('the current details of an order that is %s open with its status and what it means', (_state, view, headline) => {
  expect(describeOrder(view).split('\n\n')[0]).toBe(headline);
});

test('current details price the lines once the stock is held, and say what a rejected order lacked', () => {
  expect(describeOrder(awaiting)).toContain('| SKU\\-1 | 2 | 24.50 | 49.00 |\n| SKU\\-3 | 1 | 6.50 | 6.50 |\n| **Total** | | | **55.50** |');
  const rejected = describeOrder({ ...awaiting, status: 'REJECTED', shortages: [{ sku: 'SKU-1', requested: 2, available: 1 }] });
  expect(rejected).not.toContain('Total');
  expect(rejected).toContain('**Missing:** SKU\\-1 (2 asked, 1 available)');
});
