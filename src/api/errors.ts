/**
 * The contract's error codes, mapped to HTTP in one place. Every error response is
 * `{ "error": { "code", "message", "details"? } }`; internal errors say nothing more.
 */
import type { ErrorRequestHandler, Request, RequestHandler } from 'express';
import { UNAVAILABLE_RETRY_AFTER_SECONDS, unavailableMessage, unreachablePart, type UnreachablePart } from './unavailable';

export const ERROR_STATUS = {
  VALIDATION_FAILED: 400,
  INVALID_SIGNATURE: 401,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  ORDER_NOT_FOUND: 404,
  API_KEY_NOT_FOUND: 404,
  PRODUCT_NOT_FOUND: 404,
  ROUTE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  OUT_OF_STOCK: 409,
  PURCHASE_LIMIT_EXCEEDED: 409,
  TOO_MANY_OPEN_ORDERS: 409,
  ORDER_EXPIRED: 409,
  ORDER_CANCELLED: 409,
  ORDER_REJECTED: 409,
  ORDER_ALREADY_PAID: 409,
  UNKNOWN_SKU: 422,
  IDEMPOTENCY_KEY_REUSED: 422,
  STOCK_LIMIT_EXCEEDED: 422,
  EXTENSION_TOO_LONG: 422,
  EXTENSION_NOT_SUPPORTED: 409,
  INTERNAL_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface ApiErrorOptions {
  /** The body's `error.details`. */
  details?: unknown;
  /** Fields placed beside `error` in the body, e.g. the orderId of a rejected order. */
  extra?: Record<string, unknown>;
  /** Response headers that belong to the error, e.g. `Allow` or `WWW-Authenticate`. */
  headers?: Record<string, string>;
}

export class ApiError extends Error {
  readonly status: number;
  readonly details?: unknown;
  readonly extra?: Record<string, unknown>;
  readonly headers?: Record<string, string>;

  constructor(readonly code: ErrorCode, message: string, options: ApiErrorOptions = {}) {
    super(message);
    this.status = ERROR_STATUS[code];
    this.details = options.details;
    this.extra = options.extra;
    this.headers = options.headers;
  }

  toBody(): Record<string, unknown> {
    const error: Record<string, unknown> = { code: this.code, message: this.message };
    if (this.details !== undefined) error.details = this.details;
    return { ...this.extra, error };
  }
}

export const notFoundRoute: RequestHandler = (req, _res, next) => {
  next(new ApiError('ROUTE_NOT_FOUND', `no route for ${req.method} ${req.path}`));
};

/** For a path that exists with other methods. */
export function methodNotAllowed(allowed: string[]): RequestHandler {
  return (req, _res, next) => {
    next(
      new ApiError('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${req.path}; use ${allowed.join(', ')}`, {
        headers: { Allow: allowed.join(', ') },
      }),
    );
  };
}

export function errorHandler(onInternal: (error: unknown, req: Request) => void): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    const apiError = toApiError(error, req.path);
    if (apiError.code === 'INTERNAL_ERROR') onInternal(error, req);
    if (res.headersSent) return;
    res.set(apiError.headers ?? {});
    res.status(apiError.status).json(apiError.toBody());
  };
}

const BODY_PROBLEMS: Record<string, string> = {
  'entity.parse.failed': 'the body is not valid JSON',
  'entity.too.large': 'the body is too large',
  'encoding.unsupported': 'the body has an unsupported content encoding',
  'charset.unsupported': 'the body has an unsupported charset',
  'request.size.invalid': 'the body is shorter or longer than its Content-Length',
  'request.aborted': 'the request was aborted',
};

/**
 * Body-parser failures (they carry a `type`) are malformed input; a path that cannot be
 * percent-decoded names nothing; anything else is an internal error with no detail leaked.
 */
function toApiError(error: unknown, path: string): ApiError {
  if (error instanceof ApiError) return error;
  const { type, status } = (error ?? {}) as { type?: unknown; status?: unknown };
  if (typeof type === 'string' && typeof status === 'number' && status >= 400 && status < 500) {
    const message = BODY_PROBLEMS[type] ?? 'the body could not be read';
    return new ApiError('VALIDATION_FAILED', message, { details: [{ path: '', message }] });
  }
  if (error instanceof URIError) return undecodablePath(path);
  const part = unreachablePart(error);
  if (part) return serviceUnavailable(part);
  return new ApiError('INTERNAL_ERROR', 'internal error');
}

/** 503 with Retry-After: Temporal or PostgreSQL could not be reached (src/api/unavailable.ts). */
export function serviceUnavailable(part: UnreachablePart): ApiError {
  return new ApiError('SERVICE_UNAVAILABLE', unavailableMessage(part), {
    details: { unavailable: part },
    headers: { 'Retry-After': String(UNAVAILABLE_RETRY_AFTER_SECONDS) },
  });
}

/** 422: an Idempotency-Key sent again with a different request (body, or an extension's seconds). */
export function idempotencyKeyReused(): ApiError {
  return new ApiError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different request');
}

function undecodablePath(path: string): ApiError {
  if (path.startsWith('/orders/')) return new ApiError('ORDER_NOT_FOUND', 'no such order');
  if (path.startsWith('/products/')) return new ApiError('PRODUCT_NOT_FOUND', 'no such product');
  return new ApiError('VALIDATION_FAILED', 'the URL is not correctly percent-encoded', {
    details: [{ path: 'url', message: 'malformed percent-encoding' }],
  });
}
