/**
 * The timing mechanism of approaches 1–4 (`--scenario approaches`), as a process of its own so
 * the bench can SIGKILL it mid-run and start it again. Whatever tells it an order is due, it
 * returns the stock through the service's own activities: `releaseStock` (decide_order, EXPIRE)
 * for one order, `reclaimDueOrders` (reclaim_due_orders) for a sweep. The database decides; an
 * order paid in time, or already expired, is answered as decided and nothing moves twice.
 *
 *   node --import tsx scripts/bench/approaches/consumer.ts '<ConsumerConfig as JSON>'
 *
 * Prints `READY` once it is connected and consuming, then `COUNTERS {...}` (this process's
 * totals) whenever they change, at most every 200 ms.
 */
import { connect, type ConsumeMessage } from 'amqplib';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { createActivities } from '../../../activities';
import { createLocalPaymentProvider } from '../../../activities/payment-provider';
import { reclaimDueOrders } from '../../../src/reclaim';
import type { SettledOrder, StillHeld } from '../../../activities/types';
import { DEFAULTS } from '../../../src/config';
import { createPrismaClient } from '../../../src/db/client';

export const ConsumerConfig = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('rabbitmq'), databaseUrl: z.string(), amqpUrl: z.string(), delayQueue: z.string(), dueQueue: z.string(), prefetch: z.number().int().min(1) }),
  z.object({ kind: z.literal('redis'), databaseUrl: z.string(), redisUrl: z.string(), key: z.string(), pollMs: z.number().int().min(1), batch: z.number().int().min(1) }),
  // cron: a sweep at every multiple of periodMs on the wall clock; poll: a sweep, then periodMs of sleep.
  z.object({ kind: z.enum(['cron', 'poll']), databaseUrl: z.string(), periodMs: z.number().int().min(1), batch: z.number().int().min(1) }),
]);
export type ConsumerConfig = z.infer<typeof ConsumerConfig>;

/** What one consumer process did; the bench adds up the last line of each process it ran. */
export interface ConsumerCounters {
  /** Database transactions it ran (each decide_order call, each sweep's batch). */
  transactions: number;
  /** Of those, sweeps that found nothing due. */
  emptySweeps: number;
  /** Orders whose stock this process put back (the database says it decided them now). */
  released: number;
  /** Deliveries for an order already EXPIRED: a redelivery after the crash, absorbed by the rule. */
  redundant: number;
  /** Deliveries for an order paid, or paid by the rule just now (a racing payment): a delay message cannot be taken back when the order is paid. */
  alreadyPaid: number;
  /** Deliveries the database found not yet due (its clock decides): scheduled again. */
  early: number;
  /** Broker or Redis commands it sent. */
  brokerCommands: number;
}

const counters: ConsumerCounters = { transactions: 0, emptySweeps: 0, released: 0, redundant: 0, alreadyPaid: 0, early: 0, brokerCommands: 0 };
let printed = '';
const reporter = setInterval(() => {
  const line = JSON.stringify(counters);
  if (line === printed) return;
  printed = line;
  process.stdout.write(`COUNTERS ${line}\n`);
}, 200);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ready = () => process.stdout.write('READY\n');

async function main(): Promise<void> {
  const config = ConsumerConfig.parse(JSON.parse(process.argv[2] ?? '{}'));
  const prisma = createPrismaClient(config.databaseUrl, 10);
  const activities = createActivities({ prisma, payments: createLocalPaymentProvider(), maxPaymentWindowSeconds: DEFAULTS.maxPaymentWindowSeconds });

  /** Proposes the expiry; the answer says what the order is now. */
  const release = async (orderId: string): Promise<SettledOrder | StillHeld> => {
    counters.transactions++;
    const answer = await activities.releaseStock({ orderId, reason: 'EXPIRED' });
    if (answer.status === 'AWAITING_PAYMENT') counters.early++;
    else if (answer.status !== 'EXPIRED') counters.alreadyPaid++;
    else if (answer.decidedNow) counters.released++;
    else counters.redundant++;
    return answer;
  };

  switch (config.kind) {
    case 'rabbitmq': {
      const connection = await connect(config.amqpUrl);
      const channel = await connection.createConfirmChannel();
      await channel.prefetch(config.prefetch);
      // Acknowledged only once the database has answered: a crash before that redelivers it.
      await channel.consume(
        config.dueQueue,
        (message: ConsumeMessage | null) => {
          if (!message) return;
          const orderId = message.content.toString();
          void release(orderId)
            .then(async (answer) => {
              if (answer.status === 'AWAITING_PAYMENT') {
                // Early by the database's clock: wait out the rest in the delay queue again.
                counters.brokerCommands++;
                await new Promise<void>((resolve, reject) =>
                  channel.sendToQueue(config.delayQueue, message.content, { expiration: String(Math.max(1, answer.dueInMs)), persistent: true }, (error) =>
                    error ? reject(error as Error) : resolve(),
                  ),
                );
              }
              counters.brokerCommands++;
              channel.ack(message);
            })
            .catch((error: unknown) => {
              process.stderr.write(`release of ${orderId} failed: ${String(error)}\n`);
              channel.nack(message, false, true);
            });
        },
        { noAck: false },
      );
      counters.brokerCommands++;
      ready();
      return new Promise(() => undefined);
    }
    case 'redis': {
      const redis = new Redis(config.redisUrl);
      await redis.ping();
      ready();
      for (;;) {
        counters.brokerCommands++;
        const due = await redis.zrangebyscore(config.key, '-inf', Date.now(), 'LIMIT', 0, config.batch);
        if (due.length === 0) {
          counters.emptySweeps++;
          await sleep(config.pollMs);
          continue;
        }
        // Settled first, taken out of the set after: a crash between the two only delivers again.
        await Promise.all(
          due.map(async (orderId) => {
            const answer = await release(orderId);
            counters.brokerCommands++;
            if (answer.status === 'AWAITING_PAYMENT') await redis.zadd(config.key, 'XX', Date.now() + answer.dueInMs, orderId);
            else await redis.zrem(config.key, orderId);
          }),
        );
      }
    }
    case 'cron':
    case 'poll': {
      const sweep = async () => {
        // A full batch means more may be due: sweep again at once.
        for (;;) {
          counters.transactions++;
          const batch = await reclaimDueOrders(prisma, config.batch);
          counters.released += batch.released - batch.paid;
          if (batch.released === 0) counters.emptySweeps++;
          if (batch.released < config.batch) return;
        }
      };
      await prisma.$queryRaw`SELECT 1`;
      ready();
      for (;;) {
        if (config.kind === 'cron') await sleep(config.periodMs - (Date.now() % config.periodMs));
        await sweep();
        if (config.kind === 'poll') await sleep(config.periodMs);
      }
    }
  }
}

process.on('SIGTERM', () => {
  clearInterval(reporter);
  process.stdout.write(`COUNTERS ${JSON.stringify(counters)}\n`, () => process.exit(0));
});

main().catch((error: unknown) => {
  process.stderr.write(`consumer failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
