/** The Express app: routes, validation at the edge, the contract's error shape, logs and metrics. */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Request, type RequestHandler, type Response } from 'express';
import { pinoHttp } from 'pino-http';
import type { Logger } from '../logger';
import { createApiMetrics, type ApiMetrics } from '../metrics';
import { type CheckoutService, isOrderId, paymentRefusalError, PENDING_RETRY_AFTER_SECONDS } from './checkout';
import { ApiError, errorHandler, methodNotAllowed, notFoundRoute } from './errors';
import { buildOpenApiDocument } from './openapi';
import type { OperatorService } from './operator';
import type { Readiness } from './readiness';
import { CreateOrderBody, IdempotencyKey, parseOrThrow, PaymentBody, PutProductBody, RestockBody, Sku } from './schemas';
import { isValidSignature } from './signature';

export interface AppDependencies {
  checkout: CheckoutService;
  operator: OperatorService;
  readiness: Readiness;
  logger: Logger;
  /** The process's registry; a fresh one when not given (tests). */
  metrics?: ApiMetrics;
  paymentWebhookSecret: string;
  adminToken: string;
}

export const BODY_LIMIT = '64kb';

export function createApp(deps: AppDependencies): express.Express {
  const { checkout, operator, readiness } = deps;
  const metrics = deps.metrics ?? createApiMetrics();
  const openApiDocument = buildOpenApiDocument();
  const app = express();
  app.disable('x-powered-by');
  app.use(requestLogging(deps.logger));
  app.use(measureLatency(metrics));
  const json = jsonBody();

  app
    .route('/orders')
    .post(json, async (req, res) => {
      const body = parseOrThrow(CreateOrderBody, req.body);
      const keyHeader = req.header('Idempotency-Key');
      const key = keyHeader === undefined ? undefined : parseOrThrow(IdempotencyKey, keyHeader, 'Idempotency-Key');
      const placed = await checkout.placeOrder(body, key);
      noteOrder(res, placed.order.orderId);
      if (placed.httpStatus === 409) {
        const error = new ApiError('OUT_OF_STOCK', 'not enough stock; nothing was held', placed.shortages, {
          orderId: placed.order.orderId,
        });
        res.status(409).json(error.toBody());
        return;
      }
      if (placed.httpStatus === 202) {
        pending(res, placed.order.orderId).json(placed.order);
        return;
      }
      res.status(201).json(placed.order);
    })
    .all(methodNotAllowed(['POST']));

  app
    .route('/orders/:orderId')
    .get(async (req, res) => {
      res.json(await checkout.getOrder(orderIdParam(req, res)));
    })
    .all(methodNotAllowed(['GET']));

  // The webhook verifies the signature over the exact bytes received, so it parses JSON itself.
  app
    .route('/orders/:orderId/payment')
    .post(express.raw({ type: () => true, limit: BODY_LIMIT }), async (req, res) => {
      const orderId = orderIdParam(req, res);
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      if (!isValidSignature(deps.paymentWebhookSecret, raw, req.header('X-Signature'))) {
        throw new ApiError('INVALID_SIGNATURE', 'missing or invalid X-Signature');
      }
      const payment = parseOrThrow(PaymentBody, parseJson(raw));
      const result = await checkout.pay(orderId, payment);
      if (result.outcome === 'PENDING') {
        pending(res, result.order.orderId).json({ outcome: result.outcome, order: result.order });
        return;
      }
      if (result.outcome === 'APPLIED') {
        res.json(result.order);
        return;
      }
      const error = paymentRefusalError(result.outcome, result.refund);
      res.status(error.status).json(error.toBody());
    })
    .all(methodNotAllowed(['POST']));

  app
    .route('/orders/:orderId/cancel')
    .post(async (req, res) => {
      const cancelled = await checkout.cancel(orderIdParam(req, res));
      if (cancelled.httpStatus === 202) {
        pending(res, cancelled.order.orderId).json(cancelled.order);
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

  // Operator endpoints: the token is checked before the body is even read.
  app.use('/admin', requireBearerToken(deps.adminToken));

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
      res.json(await operator.restock(sku, quantity));
    })
    .all(methodNotAllowed(['POST']));

  app
    .route('/admin/inventory/check')
    .get(async (_req, res) => {
      res.json(await operator.checkInventory());
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
      if (!ready) throw new ApiError('SERVICE_UNAVAILABLE', 'not ready', checks);
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
          new ApiError('VALIDATION_FAILED', 'the body must be JSON (Content-Type: application/json)', [
            { path: '', message: 'expected a JSON body' },
          ]),
        );
        return;
      }
      next();
    });
  };
}

function requireBearerToken(token: string): RequestHandler {
  // Hashing both sides gives equal lengths, so the comparison is constant-time whatever is sent.
  const expected = sha256(token);
  return (req, _res, next) => {
    const match = /^Bearer +(\S+) *$/i.exec(req.header('Authorization') ?? '');
    if (!match?.[1] || !timingSafeEqual(sha256(match[1]), expected)) {
      throw new ApiError('UNAUTHORIZED', 'operator endpoints need Authorization: Bearer <ADMIN_TOKEN>', undefined, undefined, {
        'WWW-Authenticate': 'Bearer realm="checkout-admin"',
      });
    }
    next();
  };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * One JSON line per request with its id (the caller's X-Request-Id when sane, else a new one,
 * echoed back), method, path, status, latency and, where there is one, the orderId. Headers
 * are not logged: they carry the admin token and webhook signatures.
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
      return orderId === undefined ? {} : { orderId };
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

/** 202: not decided within the decision wait; where to look, and when. */
function pending(res: Response, orderId: string): Response {
  return res.status(202).location(`/orders/${orderId}`).set('Retry-After', String(PENDING_RETRY_AFTER_SECONDS));
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
