/**
 * Human-readable text for the Temporal Web UI: the one-line summary and static details the
 * API sets at start, the current details the workflow keeps up to date, and the wording of
 * activity and timer summaries. Pure functions of their input, so the workflow can use them.
 */
import type { Cents, IsoTime, OrderLine, OrderView, RequestedItem } from './messages';

/**
 * The Web UI (2.42) sizes the frame that shows markdown to the body's scrollHeight, which
 * leaves out the last block's bottom margin: the last line shows cut in half. A closing rule
 * takes that cut instead.
 */
const CLOSING_RULE = '---';

/** One-line texts name this many items and count the rest, so they stay one line. */
const ITEMS_IN_ONE_LINE = 3;

/** "2 × SKU-1, 1 × SKU-3"; past three items, "… and 4 more items". */
export function describeItems(items: readonly RequestedItem[]): string {
  const named = items.slice(0, ITEMS_IN_ONE_LINE).map((i) => `${i.quantity} × ${i.sku}`);
  const rest = items.length - named.length;
  return rest > 0 ? `${named.join(', ')} and ${rest} more item${rest === 1 ? '' : 's'}` : named.join(', ');
}

export function formatCents(cents: Cents): string {
  const sign = cents < 0 ? '-' : '';
  const abs = Math.abs(cents);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

/** 900 → "15m", 90 → "1m30s", 7200 → "2h". */
export function formatDuration(totalSeconds: number): string {
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = totalSeconds % 60;
  const parts = [h ? `${h}h` : '', m ? `${m}m` : '', s ? `${s}s` : ''].filter(Boolean);
  return parts.length ? parts.join('') : '0s';
}

/** "2026-11-25T09:51:40.341Z" → "2026-11-25 09:51:40 UTC", as the Web UI shows its own times. */
export function formatTime(iso: IsoTime): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

/** The workflow's static summary: who and what, on one line. */
export function orderSummary(orderId: string, customerId: string, items: readonly RequestedItem[]): string {
  return `Order ${orderId} for ${customerId}: ${describeItems(items)}`;
}

/** The workflow's static details (markdown): what was asked for, fixed for the order's life. */
export function orderDetails(order: {
  customerId: string;
  items: readonly RequestedItem[];
  paymentTimeoutSeconds: number;
}): string {
  return [
    `**Customer:** ${escapeMarkdown(order.customerId)}`,
    `**Payment window:** ${formatDuration(order.paymentTimeoutSeconds)} from placement`,
    requestedTable(order.items),
    CLOSING_RULE,
  ].join('\n\n');
}

/**
 * Markdown shown as the order's current details: where it stands now, then its lines.
 * `processingHoldUntil`: the end of the processing hold the database last said the order is under.
 */
export function describeOrder(view: OrderView, processingHoldUntil?: IsoTime): string {
  const held = view.status === 'AWAITING_PAYMENT' && processingHoldUntil !== undefined;
  const now = held ? `${headline(view)}; a payment is processing, stock held while it lasts (until ${formatTime(processingHoldUntil)} at most)` : headline(view);
  const sections = [`**${view.status}**: ${now}`, `**Customer:** ${escapeMarkdown(view.customerId)}`];
  sections.push(view.status === 'PENDING' || view.status === 'REJECTED' ? requestedTable(view.items) : pricedTable(view));
  if (view.shortages?.length) {
    const missing = view.shortages.map((s) => `${escapeMarkdown(s.sku)} (${s.requested} asked, ${s.available} available)`);
    sections.push(`**Missing:** ${missing.join(', ')}`);
  }
  sections.push(CLOSING_RULE);
  return sections.join('\n\n');
}

/** What the order is waiting for or how it ended, in a few words after its status. */
function headline(view: OrderView): string {
  const total = formatCents(view.totalCents);
  const released = view.closedAt ? `stock released at ${formatTime(view.closedAt)}` : 'releasing the stock';
  switch (view.status) {
    case 'PENDING':
      return 'reserving the stock';
    case 'AWAITING_PAYMENT':
      return `${total} due by ${formatTime(view.expiresAt)}`;
    case 'PAID':
      return view.paymentId && view.paidAt
        ? `${total} paid by payment ${escapeMarkdown(view.paymentId)} at ${formatTime(view.paidAt)}; stock sold`
        : `${total} paid; moving the stock to sold`;
    case 'EXPIRED':
      return `unpaid at ${formatTime(view.expiresAt)}; ${released}`;
    case 'CANCELLED':
      return released;
    case 'REJECTED':
      // Without shortages the hold refused it for a purchase limit (the order's record says which).
      return view.shortages?.length ? 'not enough stock; nothing held' : 'refused; nothing held';
  }
}

function requestedTable(items: readonly RequestedItem[]): string {
  return ['| SKU | Quantity |', '|:--|--:|', ...items.map((i) => `| ${escapeMarkdown(i.sku)} | ${i.quantity} |`)].join('\n');
}

function pricedTable(view: OrderView): string {
  const row = (i: OrderLine) =>
    `| ${escapeMarkdown(i.sku)} | ${i.quantity} | ${formatCents(i.unitPriceCents)} | ${formatCents(i.quantity * i.unitPriceCents)} |`;
  return [
    '| SKU | Quantity | Unit price | Amount |',
    '|:--|--:|--:|--:|',
    ...view.items.map(row),
    `| **Total** | | | **${formatCents(view.totalCents)}** |`,
  ].join('\n');
}

/** Customer ids, skus and payment ids are caller input: shown as literal text, never as markup. */
export function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>~]/g, '\\$&');
}
