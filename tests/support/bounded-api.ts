/**
 * The API's HTTP app over a fault test's parts, with a short decision wait, and the checks every
 * bounded-answer test makes: how long an answer took, and that each unit of stock moved once.
 */
import type { Client } from '@temporalio/client';
import type express from 'express';
import type { PrismaClient } from '../../prisma/generated/client';
import type { HttpAnswer } from './api-calls';
import { createTestApi } from './stack';

/**
 * Short, so the tests see the 202s quickly; the default is 10 s, and 1 s is the least the config
 * allows. Every 202 costs this much (bounded-answers-worker waits out 34 of them).
 */
export const TEST_DECISION_WAIT_SECONDS = 1;

/**
 * What "within the bound" means on a loaded, shared machine: the wait plus generous slack,
 * still far from the unbounded wait (minutes) these tests guard against.
 */
export const ANSWER_BOUND_MS = TEST_DECISION_WAIT_SECONDS * 1000 + 10_000;

export interface BoundedApi {
  app: express.Express;
  close(): Promise<void>;
}

export function boundedApi(deps: { prisma: PrismaClient; temporal: Client; taskQueue: string }): BoundedApi {
  const { app, services } = createTestApi({ ...deps, defaultPaymentTimeoutSeconds: 900, decisionWaitSeconds: TEST_DECISION_WAIT_SECONDS });
  return { app, close: () => services.readiness.close() };
}

/** A 503 SERVICE_UNAVAILABLE with Retry-After, within the bound, naming the part that is down. */
export function expectUnavailable(answer: HttpAnswer, unavailable: 'postgres' | 'temporal'): void {
  expect(answer.ms).toBeLessThan(ANSWER_BOUND_MS);
  expect(answer.status).toBe(503);
  expect(answer.headers['retry-after']).toMatch(/^\d+$/);
  expect(answer.body).toMatchObject({ error: { code: 'SERVICE_UNAVAILABLE', details: { unavailable } } });
}
