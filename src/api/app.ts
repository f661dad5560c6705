/** The Express app: routes, validation at the edge, and the contract's error shape. */
import express, { type Request } from 'express';
import type { Logger } from '../logger';
import { type CheckoutService, paymentRefusalError } from './checkout';
import { ApiError, errorHandler, notFoundRoute } from './errors';
import { CreateOrderBody, IdempotencyKey, parseOrThrow, PaymentBody } from './schemas';
import { isValidSignature } from './signature';

export interface AppDependencies {
  checkout: CheckoutService;
  logger: Logger;
  paymentWebhookSecret: string;
}

const BODY_LIMIT = '64kb';

export function createApp({ checkout, logger, paymentWebhookSecret }: AppDependencies): express.Express {
  const app = express();
  app.disable('x-powered-by');
  const json = express.json({ limit: BODY_LIMIT, strict: false });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.post('/orders', json, async (req, res) => {
    const body = parseOrThrow(CreateOrderBody, req.body);
    const keyHeader = req.header('Idempotency-Key');
    const key = keyHeader === undefined ? undefined : parseOrThrow(IdempotencyKey, keyHeader);
    const placed = await checkout.placeOrder(body, key);
    if (placed.httpStatus === 409) {
      const error = new ApiError('OUT_OF_STOCK', 'not enough stock; nothing was held', placed.shortages, {
        orderId: placed.order.orderId,
      });
      res.status(409).json(error.toBody());
      return;
    }
    res.status(201).json(placed.order);
  });

  app.get('/orders/:orderId', async (req, res) => {
    res.json(await checkout.getOrder(param(req, 'orderId')));
  });

  // The webhook verifies the signature over the exact bytes received, so it parses JSON itself.
  app.post('/orders/:orderId/payment', express.raw({ type: () => true, limit: BODY_LIMIT }), async (req, res) => {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (!isValidSignature(paymentWebhookSecret, raw, req.header('X-Signature'))) {
      throw new ApiError('INVALID_SIGNATURE', 'missing or invalid X-Signature');
    }
    const payment = parseOrThrow(PaymentBody, parseJson(raw));
    const result = await checkout.pay(param(req, 'orderId'), payment);
    if (result.outcome === 'APPLIED') {
      res.json(result.order);
      return;
    }
    const error = paymentRefusalError(result.outcome, result.refund);
    res.status(error.status).json(error.toBody());
  });

  app.post('/orders/:orderId/cancel', async (req, res) => {
    res.json(await checkout.cancel(param(req, 'orderId')));
  });

  app.get('/products', async (_req, res) => {
    res.json({ products: await checkout.listProducts() });
  });

  app.get('/products/:sku', async (req, res) => {
    res.json(await checkout.getProduct(param(req, 'sku')));
  });

  app.use(notFoundRoute);
  app.use(errorHandler((error) => logger.error({ err: error }, 'request failed')));
  return app;
}

function param(req: Request, name: string): string {
  const value = req.params[name];
  return typeof value === 'string' ? value : '';
}

function parseJson(raw: Buffer): unknown {
  try {
    return JSON.parse(raw.toString('utf8')) as unknown;
  } catch {
    throw new ApiError('VALIDATION_FAILED', 'the body is not valid JSON', [{ path: '', message: 'malformed JSON' }]);
  }
}

