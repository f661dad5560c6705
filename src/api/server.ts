/** The API process: HTTP in front, Temporal and PostgreSQL behind. */
import type { Server } from 'node:http';
import { loadConfig } from '../config';
import { createPrismaClient } from '../db/client';
import { createLogger } from '../logger';
import { connectTemporalClient } from '../temporal';
import { createApp } from './app';
import { CheckoutService } from './checkout';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger('api', config.logLevel);
  const prisma = createPrismaClient(config.databaseUrl, config.databasePoolSize);
  const temporal = await connectTemporalClient(config.temporal);
  const checkout = new CheckoutService({
    prisma,
    temporal,
    taskQueue: config.temporal.taskQueue,
    defaultPaymentTimeoutSeconds: config.paymentTimeoutSeconds,
  });
  const app = createApp({ checkout, logger, paymentWebhookSecret: config.paymentWebhookSecret });
  const server: Server = app.listen(config.port, () => logger.info({ port: config.port }, 'API listening'));

  const stop = (signal: string) => {
    logger.info({ signal }, 'API shutting down: no new requests, finishing those in flight');
    server.close(() => {
      void Promise.all([temporal.connection.close(), prisma.$disconnect()]).finally(() => process.exit(0));
    });
    server.closeIdleConnections();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: unknown) => {
  createLogger('api', 'error').fatal({ err: error }, 'API failed to start');
  process.exit(1);
});
