/** Request bodies, validated at the edge before anything else happens. */
import { z } from 'zod';
import { ApiError } from './errors';

export const MAX_ITEMS = 50;

export const CreateOrderBody = z.strictObject({
  customerId: z.string().min(1).max(64),
  items: z
    .array(
      z.strictObject({
        sku: z.string().min(1).max(64),
        quantity: z.number().int().min(1).max(1000),
      }),
    )
    .min(1)
    .max(MAX_ITEMS)
    .refine((items) => new Set(items.map((i) => i.sku)).size === items.length, {
      message: 'skus must be distinct',
    }),
  paymentTimeoutSeconds: z.number().int().min(1).max(86_400).optional(),
});
export type CreateOrderBody = z.infer<typeof CreateOrderBody>;

export const PaymentBody = z.strictObject({
  paymentId: z.string().min(1).max(128),
  amountCents: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});
export type PaymentBody = z.infer<typeof PaymentBody>;

export const IdempotencyKey = z.string().min(1).max(255);

export function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new ApiError(
    'VALIDATION_FAILED',
    'the request is invalid',
    result.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message })),
  );
}
