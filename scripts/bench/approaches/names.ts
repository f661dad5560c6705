/** The six approaches of `--scenario approaches`, by name (docs/approaches.md). */
export const APPROACHES = ['rabbitmq', 'redis', 'cron', 'poll', 'timer', 'service'] as const;
export type Approach = (typeof APPROACHES)[number];

export const APPROACH_LABELS: Record<Approach, string> = {
  rabbitmq: '1. RabbitMQ per-message TTL + dead-letter exchange',
  redis: '2. Redis sorted set + poller',
  cron: '3. cron sweep',
  poll: '4. DB polling',
  timer: '5. Temporal timer per order, no reclaim',
  service: '6. this service: Temporal + the reclaim',
};
