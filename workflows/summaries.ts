/** Human-readable text for the Temporal Web UI: summaries and details of an order. */
import type { Cents, OrderView, RequestedItem } from './messages';

export function describeItems(items: readonly RequestedItem[]): string {
  return items.map((i) => `${i.quantity} × ${i.sku}`).join(', ');
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

/** One line for the workflow list: who, what, how much. */
export function orderSummary(orderId: string, customerId: string, items: readonly RequestedItem[]): string {
  return `Order ${orderId} for ${customerId}: ${describeItems(items)}`;
}

/** Markdown shown as the order's current details; changes with its state. */
export function describeOrder(view: OrderView): string {
  const lines = [
    `**Status:** ${view.status}`,
    `**Customer:** ${view.customerId}`,
    `**Items:** ${describeItems(view.items)}`,
    `**Total:** ${view.status === 'PENDING' ? '(pricing at reservation)' : formatCents(view.totalCents)}`,
    `**Payment deadline:** ${view.expiresAt}`,
  ];
  if (view.paymentId) lines.push(`**Paid by:** ${view.paymentId} at ${view.paidAt ?? ''}`);
  if (view.closedAt) lines.push(`**Closed at:** ${view.closedAt}`);
  if (view.shortages?.length) {
    lines.push(`**Missing:** ${view.shortages.map((s) => `${s.sku} (${s.available} of ${s.requested})`).join(', ')}`);
  }
  return lines.join('\n\n');
}
