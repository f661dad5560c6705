/**
 * The Express app: routes, validation at the edge, the contract's error shape, logs and metrics.
 *
 * Over 400 lines: every route of the contract in one place, and the one place where the
 * services' typed outcomes become HTTP statuses (docs/api.md reads the same way).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Request, type RequestHandler, type Response } from 'express';
import { pinoHttp } from 'pino-http';
import type { Logger } from '../logger';
import { createApiMetrics, type ApiMetrics } from '../metrics';
import type { ApiKeyStore } from './api-keys';
import { type Authenticator, callerIdOf, channelOf, requireKey } from './authentication';
import { type CheckoutService, UNDECIDED_RETRY_AFTER_SECONDS } from './checkout';
import type { RefusalCode } from './admission';
import { ApiError, errorHandler, methodNotAllowed, notFoundRoute } from './errors';
import { buildOpenApiDocument } from './openapi';
import type { OperatorService } from './operator';
import type { CancelRefusal, ExtensionRefusal } from './order-commands';
import type { OrderEventsReader } from './order-events';
import { isOrderId } from './order-records';
import type { PaymentAnswer } from './payments';
import type { Readiness } from './readiness';
import {
  CreateApiKeyBody,
  CreateOrderBody,
  EventsPageQuery,
  InventoryCheckQuery,
  ExtendBody,
  IdempotencyKey,
  parseOrThrow,
  PutProductBody,
  RestockBody,
  Sku,
} from './schemas';
import { StandardWebhookVerifier, StripeWebhookVerifier } from './webhooks';

export interface AppDependencies {
  checkout: CheckoutService;
  operator: OperatorService;
  events: OrderEventsReader;
  readiness: Readiness;
  logger: Logger;
  /** The process's registry; a fresh one when not given (tests). */
  metrics?: ApiMetrics;
  /** Standard Webhooks secrets for POST /webhooks/payments; any of them may sign a delivery. */
  paymentWebhookSecrets: readonly string[];
  /** Turns POST /webhooks/stripe on. */
  stripeWebhookSecret?: string;
  /** Who may call: the bootstrap keys and the api_keys table, through the replica's cache. */
  authenticator: Authenticator;
  apiKeys: ApiKeyStore;
}

export const BODY_LIMIT = '64kb';

export function createApp(deps: AppDependencies): express.Express {
  const { checkout, operator, events, readiness } = deps;
  const metrics = deps.metrics ?? createApiMetrics();
  const openApiDocument = buildOpenApiDocument();
  const app = express();
  app.disable('x-powered-by');
  app.use(requestLogging(deps.logger));
  app.use(measureLatency(metrics));
  const json = jsonBody();
  const { authenticator } = deps;

  // Storefront and operator routes: the key is checked before any body parser reads the body.
  app.use('/orders', requireKey(authenticator, 'orders'));
  app.use('/admin', requireKey(authenticator, 'operator'));

  app
    .route('/orders')
    .post(json, async (req, res) => {
      const body = parseOrThrow(CreateOrderBody, req.body);
      const keyHeader = req.header('Idempotency-Key');
      const key = keyHeader === undefined ? undefined : parseOrThrow(IdempotencyKey, keyHeader, 'Idempotency-Key');
      const placed = await checkout.placeOrder(body, key, channelOf(res));
      noteOrder(res, placed.order.orderId);
      if (placed.outcome === 'REJECTED') {
        if (placed.decidedBy) metrics.orderRefusals.inc({ reason: placed.refusal.code, decided_by: placed.decidedBy });
        const error = new ApiError(placed.refusal.code, REFUSAL_MESSAGES[placed.refusal.code], {
          details: placed.refusal.details,
          extra: { orderId: placed.order.orderId },
        });
        res.status(409).json(error.toBody());
        return;
      }
      if (placed.outcome === 'UNDECIDED') {
        undecided(res, placed.order.orderId).json(placed.order);
        return;
      }
      res.status(201).json(placed.order);
    })
    .all(methodNotAllowed(['POST']));

  app
    .route('/orders/:orderId')
    .get(async (req, res) => {
      res.json(await checkout.getOrder(orderIdParam(req, res), channelOf(res)));
    })
    .all(methodNotAllowed(['GET']));

  app
    .route('/orders/:orderId/events')
    .get(async (req, res) => {
      res.json({ events: await events.forOrder(orderIdParam(req, res), channelOf(res)) });
    })
    .all(methodNotAllowed(['GET']));

  // Provider deliveries are verified over the exact bytes received, so they are parsed after
  // that, by the verifier. Compressed bodies are refused (415 from the parser → 400): a
  // signature covers the bytes on the wire.
  const rawBody = express.raw({ type: () => true, limit: BODY_LIMIT, inflate: false });
  const standardWebhooks = new StandardWebhookVerifier(deps.paymentWebhookSecrets);

  app
    .route('/webhooks/payments')
    .post(rawBody, async (req, res) => {
      const event = standardWebhooks.read(rawBytes(req), (name) => req.header(name));
      if (isOrderId(event.orderId)) noteOrder(res, event.orderId);
      answerDelivery(res, await checkout.receivePayment(event));
    })
    .all(methodNotAllowed(['POST']));

  // Without a signing secret the Stripe endpoint does not exist (404 ROUTE_NOT_FOUND).
  if (deps.stripeWebhookSecret !== undefined) {
    const stripe = new StripeWebhookVerifier(deps.stripeWebhookSecret);
    app
      .route('/webhooks/stripe')
      .post(rawBody, async (req, res) => {
        const delivery = stripe.read(rawBytes(req), req.header('Stripe-Signature'));
        if (delivery.kind === 'ignored') {
          res.json({ ignored: true });
          return;
        }
        if (isOrderId(delivery.event.orderId)) noteOrder(res, delivery.event.orderId);
        answerDelivery(res, await checkout.receivePayment(delivery.event));
      })
      .all(methodNotAllowed(['POST']));
  }

  app
    .route('/orders/:orderId/cancel')
    .post(async (req, res) => {
      const cancelled = await checkout.cancel(orderIdParam(req, res), channelOf(res));
      if (cancelled.outcome !== 'CANCELLED' && cancelled.outcome !== 'UNDECIDED') throw cancelRefused(cancelled.outcome);
      if (cancelled.outcome === 'UNDECIDED') {
        undecided(res, cancelled.order.orderId).json(cancelled.order);
        return;
      }
      res.json(cancelled.order);
    })
    .all(methodNotAllowed(['POST']));

  app
    .route('/products')
    .get(async (_req, res) => {
      res.json({ products: await checkout.listProducts() });
    })
    .all(methodNotAllowed(['GET']));

  app
    .route('/products/:sku')
    .get(async (req, res) => {
      res.json(await checkout.getProduct(param(req, 'sku')));
    })
    .all(methodNotAllowed(['GET']));

  app
    .route('/admin/products/:sku')
    .put(json, async (req, res) => {
      const sku = parseOrThrow(Sku, param(req, 'sku'), 'sku');
      const body = parseOrThrow(PutProductBody, req.body);
      const { created, product } = await operator.putProduct(sku, body);
      res.status(created ? 201 : 200).json(product);
    })
    .all(methodNotAllowed(['PUT']));

  app
    .route('/admin/products/:sku/restock')
    .post(json, async (req, res) => {
      const sku = parseOrThrow(Sku, param(req, 'sku'), 'sku');
      const { quantity } = parseOrThrow(RestockBody, req.body);
      const keyHeader = req.header('Idempotency-Key');
      const key = keyHeader === undefined ? undefined : parseOrThrow(IdempotencyKey, keyHeader, 'Idempotency-Key');
      res.json(await operator.restock(sku, quantity, key));
    })
    .all(methodNotAllowed(['POST']));

  app
    .route('/admin/orders/:orderId/extend')
    .post(json, async (req, res) => {
      const orderId = orderIdParam(req, res);
      const { seconds } = parseOrThrow(ExtendBody, req.body);
      const keyHeader = req.header('Idempotency-Key');
      const key = keyHeader === undefined ? undefined : parseOrThrow(IdempotencyKey, keyHeader, 'Idempotency-Key');
      const extended = await checkout.extend(orderId, seconds, key);
      if (extended.outcome === 'UNDECIDED') {
        undecided(res, orderId).json(extended.order);
        return;
      }
      if (extended.outcome !== 'EXTENDED') throw extensionRefused(extended.outcome);
      res.json(extended.order);
    })
    .all(methodNotAllowed(['POST']));

  app
    .route('/admin/events')
    .get(async (req, res) => {
      const { after, limit } = parseOrThrow(EventsPageQuery, req.query);
      res.json(await events.page(after, limit));
    })
    .all(methodNotAllowed(['GET']));

  app
    .route('/admin/api-keys')
    .post(json, async (req, res) => {
      const body = parseOrThrow(CreateApiKeyBody, req.body);
      const { key, apiKey, digest } = await deps.apiKeys.create(body);
      // A digest this replica cached as unknown (someone tried it before it existed) is valid now.
      authenticator.forget(digest);
      res.status(201).json({ id: apiKey.id, name: apiKey.name, scope: apiKey.scope, channel: apiKey.channel, key, createdAt: apiKey.createdAt });
    })
    .get(async (_req, res) => {
      // This replica's recent uses first, so the list is current for the keys it served.
      await authenticator.flushLastUsed();
      res.json({ apiKeys: await deps.apiKeys.list() });
    })
    .all(methodNotAllowed(['POST', 'GET']));

  app
    .route('/admin/api-keys/:id')
    .delete(async (req, res) => {
      const revoked = await deps.apiKeys.revoke(param(req, 'id'));
      if (!revoked) throw new ApiError('API_KEY_NOT_FOUND', 'no such API key');
      // At once on this replica; the others drop their cached entry within DEFAULTS.apiKeyCacheSeconds.
      authenticator.forget(revoked.digest);
      res.json(revoked.apiKey);
    })
    .all(methodNotAllowed(['DELETE']));

  app
    .route('/admin/inventory/check')
    .get(async (req, res) => {
      const { full } = parseOrThrow(InventoryCheckQuery, req.query);
      res.json(await operator.checkInventory(full === 'true'));
    })
    .all(methodNotAllowed(['GET']));

  app
    .route('/healthz')
    .get((_req, res) => {
      res.json({ status: 'ok' });
    })
    .all(methodNotAllowed(['GET']));

  app
    .route('/readyz')
    .get(async (_req, res) => {
      const { ready, checks } = await readiness.check();
      if (!ready) throw new ApiError('SERVICE_UNAVAILABLE', 'not ready', { details: checks });
      res.json({ status: 'ready', checks });
    })
    .all(methodNotAllowed(['GET']));

  app
    .route('/metrics')
    .get(async (_req, res) => {
      res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    })
    .all(methodNotAllowed(['GET']));

  app
    .route('/openapi.json')
    .get((_req, res) => {
      res.json(openApiDocument);
    })
    .all(methodNotAllowed(['GET']));

  app.use(notFoundRoute);
  app.use(
    errorHandler((error, req) => {
      // The client gets `internal error`; the stack stays in the log, with the request id.
      (req.log ?? deps.logger).error({ err: error }, 'request failed');
    }),
  );
  return app;
}

/** JSON bodies only; a missing or non-JSON body is a validation failure, not an empty object. */
function jsonBody(): RequestHandler {
  const parse = express.json({ limit: BODY_LIMIT, strict: false });
  return (req, res, next) => {
    parse(req, res, (error?: unknown) => {
      if (error) {
        next(error);
        return;
      }
      if (req.body === undefined) {
        next(
          new ApiError('VALIDATION_FAILED', 'the body must be JSON (Content-Type: application/json)', {
            details: [{ path: '', message: 'expected a JSON body' }],
          }),
        );
        return;
      }
      next();
    });
  };
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * One JSON line per request with its id (the caller's X-Request-Id when sane, else a new one,
 * echoed back), method, path, status, latency and, where there are, the orderId and the id of
 * the caller's API key. Headers are not logged: they carry keys and webhook signatures.
 */
function requestLogging(logger: Logger): RequestHandler {
  return pinoHttp({
    logger,
    quietReqLogger: true,
    customAttributeKeys: { reqId: 'requestId' },
    genReqId: (req: IncomingMessage, res: ServerResponse) => {
      const given = req.headers['x-request-id'];
      const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
      res.setHeader('X-Request-Id', id);
      return id;
    },
    customProps: (_req: IncomingMessage, res: ServerResponse) => {
      const orderId = orderOf(res);
      const apiKeyId = callerIdOf(res);
      return { ...(orderId !== undefined && { orderId }), ...(apiKeyId !== undefined && { apiKeyId }) };
    },
    customLogLevel: (_req: IncomingMessage, res: ServerResponse, error?: Error) =>
      error || res.statusCode >= 500 ? 'error' : 'info',
    customSuccessMessage: (req: IncomingMessage, res: ServerResponse) => `${req.method} ${req.url} ${res.statusCode}`,
    customErrorMessage: (req: IncomingMessage, res: ServerResponse) => `${req.method} ${req.url} ${res.statusCode}`,
    serializers: {
      req: (req: { method: string; url: string }) => ({ method: req.method, url: req.url }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
  });
}

function measureLatency(metrics: ApiMetrics): RequestHandler {
  return (req, res, next) => {
    const stop = metrics.httpRequestDuration.startTimer();
    res.on('finish', () => {
      stop({ method: req.method, route: routePattern(req), status_code: String(res.statusCode) });
    });
    next();
  };
}

/** The matched route's pattern (bounded label values), never the raw path. */
function routePattern(req: Request): string {
  const path = (req.route as { path?: unknown } | undefined)?.path;
  return typeof path === 'string' ? `${req.baseUrl}${path}` : 'unmatched';
}

const ORDER_ID = Symbol('orderId');
type NotedResponse = ServerResponse & { [ORDER_ID]?: string };

function noteOrder(res: Response, orderId: string): void {
  (res as NotedResponse)[ORDER_ID] = orderId;
}

function orderOf(res: ServerResponse): string | undefined {
  return (res as NotedResponse)[ORDER_ID];
}

function orderIdParam(req: Request, res: Response): string {
  const orderId = param(req, 'orderId');
  if (isOrderId(orderId)) noteOrder(res, orderId);
  return orderId;
}

/** A decided delivery answers 200 so the provider stops; an undecided one 202, and its redelivery gets the decision. */
function answerDelivery(res: Response, answer: PaymentAnswer): void {
  if (answer.outcome === 'UNDECIDED') {
    // The contract (v3) names this outcome PENDING on the wire.
    undecided(res, answer.order.orderId).json({ ...answer, outcome: 'PENDING' });
    return;
  }
  res.json(answer);
}

/** 202: not decided within the decision wait; where to look, and when. */
function undecided(res: Response, orderId: string): Response {
  return res.status(202).location(`/orders/${orderId}`).set('Retry-After', String(UNDECIDED_RETRY_AFTER_SECONDS));
}

function param(req: Request, name: string): string {
  const value = req.params[name];
  return typeof value === 'string' ? value : '';
}

function rawBytes(req: Request): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

/** What a refused order's 409 says; nothing was held, the order is recorded REJECTED. */
const REFUSAL_MESSAGES: Record<RefusalCode, string> = {
  OUT_OF_STOCK: 'not enough stock; nothing was held',
  PURCHASE_LIMIT_EXCEEDED: "this order would take the customer past a product's maxPerCustomer; nothing was held",
  TOO_MANY_OPEN_ORDERS: 'the customer has MAX_OPEN_ORDERS_PER_CUSTOMER orders awaiting payment already; nothing was held',
};

/** 409: the order no longer awaits payment; 422: past MAX_PAYMENT_WINDOW_SECONDS. */
function extensionRefused(outcome: ExtensionRefusal): ApiError {
  switch (outcome) {
    case 'EXTENSION_TOO_LONG':
      return new ApiError('EXTENSION_TOO_LONG', 'the payment window would end past MAX_PAYMENT_WINDOW_SECONDS from createdAt; nothing was changed');
    case 'EXTENSION_NOT_SUPPORTED':
      return new ApiError('EXTENSION_NOT_SUPPORTED', 'this order was placed before extensions existed; its deadline cannot move');
    case 'ORDER_ALREADY_PAID':
      return new ApiError('ORDER_ALREADY_PAID', 'the order is paid');
    case 'ORDER_EXPIRED':
      return new ApiError('ORDER_EXPIRED', 'the order has expired');
    case 'ORDER_CANCELLED':
      return new ApiError('ORDER_CANCELLED', 'the order was cancelled');
    case 'ORDER_REJECTED':
      return new ApiError('ORDER_REJECTED', 'the order was rejected');
  }
}

/** 409: the order's final state refuses the cancel. */
function cancelRefused(outcome: CancelRefusal): ApiError {
  switch (outcome) {
    case 'ORDER_ALREADY_PAID':
      return new ApiError('ORDER_ALREADY_PAID', 'the order is paid and cannot be cancelled');
    case 'ORDER_EXPIRED':
      return new ApiError('ORDER_EXPIRED', 'the order has expired');
    case 'ORDER_REJECTED':
      return new ApiError('ORDER_REJECTED', 'the order was rejected');
  }
}
