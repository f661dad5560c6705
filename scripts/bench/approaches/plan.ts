/**
 * The one workload every approach of `--scenario approaches` runs: the same orders, at the same
 * moments, with the same windows and the same payments, drawn from a seeded generator. A shop's
 * hours are compressed into minutes by one time scale, applied to everything that is a duration
 * in the shop's world (payment windows, payment times, the cron period, the polling period), so
 * each approach does as many polls and sweeps per order as it would at real scale.
 */
import type { RequestedItem } from '../../../activities/types';
import { randomItems } from '../orders';

/** The shop's durations at real scale, in seconds (docs/approaches.md, "The workload"). */
export const REAL_SECONDS = {
  /** A card payment's window. */
  shortWindow: 5 * 60,
  /** A slower method's (bank transfer, invoice): interleaved with the short ones. */
  longWindow: 30 * 60,
  /** The cron sweep's period (a sweep every minute). */
  cronPeriod: 60,
  /** The polling period of DB polling and of the Redis delay queue's poller. */
  pollPeriod: 1,
} as const;

export interface WorkloadOptions {
  orders: number;
  /** Orders placed per second (bench time): the placing takes orders ÷ rate seconds. */
  ratePerSecond: number;
  /** Bench seconds are real seconds ÷ timeScale (60: a bench second stands for a real minute). */
  timeScale: number;
  /** Share of orders paid comfortably in time (0–1). */
  earlyPaidShare: number;
  /** Share of orders paid right at their deadline, some just before and some just after it. */
  racingShare: number;
  /** Racing payments land within ± this many ms of the deadline. */
  racingSpreadMs: number;
  seed: number;
}

export type PlannedPayment =
  | { kind: 'early'; /** Share of the window after the placing, 0.1–0.8. */ atFraction: number }
  | { kind: 'racing'; /** Milliseconds after the deadline (negative: before). */ offsetMs: number };

export interface PlannedOrder {
  n: number;
  /** Milliseconds after the run starts. */
  placeAtMs: number;
  window: 'short' | 'long';
  /** Whole seconds (the API takes whole seconds). */
  windowSeconds: number;
  items: RequestedItem[];
  payment?: PlannedPayment;
}

/** The scaled durations of a run, in bench milliseconds (whole seconds for the windows). */
export interface ScaledDurations {
  shortWindowSeconds: number;
  longWindowSeconds: number;
  cronPeriodMs: number;
  pollPeriodMs: number;
}

/** Below this a poller only spins; a period this short is reported as clamped. */
export const MIN_PERIOD_MS = 10;

export function scaledDurations(timeScale: number): ScaledDurations {
  const seconds = (real: number) => Math.max(1, Math.round(real / timeScale));
  const ms = (real: number) => Math.max(MIN_PERIOD_MS, Math.round((real * 1000) / timeScale));
  return {
    shortWindowSeconds: seconds(REAL_SECONDS.shortWindow),
    longWindowSeconds: seconds(REAL_SECONDS.longWindow),
    cronPeriodMs: ms(REAL_SECONDS.cronPeriod),
    pollPeriodMs: ms(REAL_SECONDS.pollPeriod),
  };
}

/** mulberry32: a small seeded generator, so every approach gets the very same orders. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function planOrders(o: WorkloadOptions, skus: string[]): PlannedOrder[] {
  const random = seededRandom(o.seed);
  const durations = scaledDurations(o.timeScale);
  return Array.from({ length: o.orders }, (_, n) => {
    // Interleaved at random, half and half: a short window is often queued behind a long one.
    const window = random() < 0.5 ? 'short' : 'long';
    const draw = random();
    const payment: PlannedPayment | undefined =
      draw < o.earlyPaidShare
        ? { kind: 'early', atFraction: 0.1 + random() * 0.7 }
        : draw < o.earlyPaidShare + o.racingShare
          ? { kind: 'racing', offsetMs: Math.round((random() * 2 - 1) * o.racingSpreadMs) }
          : undefined;
    return {
      n,
      placeAtMs: Math.round((n / o.ratePerSecond) * 1000),
      window,
      windowSeconds: window === 'short' ? durations.shortWindowSeconds : durations.longWindowSeconds,
      items: randomItems(skus, random),
      ...(payment && { payment }),
    };
  });
}

/** When a planned payment is sent: ms on the bench's clock, from when the order was placed and its expiresAt. */
export function paymentTime(payment: PlannedPayment, placedAtMs: number, windowSeconds: number, expiresAtMs: number): number {
  return payment.kind === 'early' ? placedAtMs + payment.atFraction * windowSeconds * 1000 : expiresAtMs + payment.offsetMs;
}
