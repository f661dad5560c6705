/**
 * The timeouts that must nest, derived from one another: a row lock is given up before the
 * transaction that waits for it, which ends before the activity attempt that runs it, so each
 * failure names what was slow and the next attempt starts clean. The workflows set their
 * activities' start-to-close from here, the worker's database client its statement timeout; the
 * API's default decision wait (10 s) outlasts one attempt (tests/config.test.ts checks the order).
 */

/** One attempt of an activity that touches the database (its start-to-close timeout). */
export const ACTIVITY_ATTEMPT_MS = 8_000;
/** Waiting for a pooled connection, then the transaction itself: both inside one attempt. */
export const CONNECTION_WAIT_MS = 1_500;
export const TRANSACTION_TIMEOUT_MS = ACTIVITY_ATTEMPT_MS - CONNECTION_WAIT_MS - 500;
/** How long one statement waits for a row lock (PostgreSQL lock_timeout) inside that transaction. */
export const LOCK_TIMEOUT_MS = TRANSACTION_TIMEOUT_MS - 2_000;

/** Prisma's interactive-transaction options for work inside one activity attempt. */
export const TRANSACTION_OPTIONS = { maxWait: CONNECTION_WAIT_MS, timeout: TRANSACTION_TIMEOUT_MS } as const;
