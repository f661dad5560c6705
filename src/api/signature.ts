import { createHmac, timingSafeEqual } from 'node:crypto';

/** `sha256=<hex>` of the raw body, as the payment provider sends it in X-Signature. */
export function signPayload(secret: string, rawBody: Buffer | string): string {
  return `sha256=${createHmac('sha256', secret).update(rawBody).digest('hex')}`;
}

/** Constant-time comparison, so the signature cannot be guessed byte by byte. */
export function isValidSignature(secret: string, rawBody: Buffer, header: string | undefined): boolean {
  if (header === undefined) return false;
  const expected = Buffer.from(signPayload(secret, rawBody));
  // Hex digits in either case are the same signature.
  const given = Buffer.from(header.trim().toLowerCase());
  return given.length === expected.length && timingSafeEqual(given, expected);
}
