/**
 * The contract's error codes, mapped to HTTP in one place. Every error response is
 * `{ "error": { "code", "message", "details"? } }`.
 */
import type { ErrorRequestHandler, RequestHandler } from 'express';

export const ERROR_STATUS = {
  VALIDATION_FAILED: 400,
  INVALID_SIGNATURE: 401,
  UNAUTHORIZED: 401,
  ORDER_NOT_FOUND: 404,
  PRODUCT_NOT_FOUND: 404,
  ROUTE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  OUT_OF_STOCK: 409,
  ORDER_EXPIRED: 409,
  ORDER_CANCELLED: 409,
  ORDER_REJECTED: 409,
  ORDER_ALREADY_PAID: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNKNOWN_SKU: 422,
  AMOUNT_MISMATCH: 422,
  IDEMPOTENCY_KEY_REUSED: 422,
  INTERNAL_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    /** Fields placed beside `error` in the body, e.g. the orderId of a rejected order. */
    readonly extra?: Record<string, unknown>,
  ) {
    super(message);
    this.status = ERROR_STATUS[code];
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

/** Body-parser failures carry a `type`; anything else is an internal error with no details leaked. */
export function errorHandler(onInternal: (error: unknown) => void): ErrorRequestHandler {
  return (error: unknown, _req, res, _next) => {
    const apiError = toApiError(error);
    if (apiError.code === 'INTERNAL_ERROR') onInternal(error);
    res.status(apiError.status).json(apiError.toBody());
  };
}

function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  const type = (error as { type?: unknown } | null)?.type;
  if (type === 'entity.parse.failed') {
    return new ApiError('VALIDATION_FAILED', 'the body is not valid JSON', [{ path: '', message: 'malformed JSON' }]);
  }
  if (type === 'entity.too.large') return new ApiError('PAYLOAD_TOO_LARGE', 'the body is too large');
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
    return new ApiError('UNSUPPORTED_MEDIA_TYPE', 'unsupported body encoding');
  }
  return new ApiError('INTERNAL_ERROR', 'internal error');
}
