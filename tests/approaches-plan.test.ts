/**
 * The approaches scenario's workload (scripts/bench/approaches/plan.ts): the same orders for every
 * approach, long and short windows interleaved, about 70 % paid with some racing the deadline,
 * and every shop duration divided by one time scale.
 */
import { paymentTime, planOrders, scaledDurations, REAL_SECONDS, type WorkloadOptions } from '../scripts/bench/approaches/plan';
import { benchSkus } from '../scripts/bench/orders';

const options: WorkloadOptions = { orders: 4000, ratePerSecond: 40, timeScale: 60, earlyPaidShare: 0.65, racingShare: 0.05, racingSpreadMs: 200, seed: 31 };
const skus = benchSkus(200);

test('every approach gets the very same orders', () => {
  expect(planOrders(options, skus)).toEqual(planOrders(options, skus));
  expect(planOrders({ ...options, seed: 32 }, skus)).not.toEqual(planOrders(options, skus));
});

test('orders arrive at the rate asked for, with short and long windows interleaved', () => {
  const plan = planOrders(options, skus);
  expect(plan.map((o) => o.placeAtMs)).toEqual(plan.map((_, n) => Math.round((n / 40) * 1000)));
  const long = plan.filter((o) => o.window === 'long');
  expect(long.length / plan.length).toBeGreaterThan(0.45);
  expect(long.length / plan.length).toBeLessThan(0.55);
  // Interleaved: many short windows are placed right after a long one (what trips a per-message TTL queue).
  const shortAfterLong = plan.filter((o, n) => n > 0 && o.window === 'short' && plan[n - 1]?.window === 'long').length;
  expect(shortAfterLong / plan.length).toBeGreaterThan(0.2);
  expect(new Set(plan.map((o) => o.windowSeconds))).toEqual(new Set([5, 30]));
});

test('about 70 % are paid: most early in their window, some racing the deadline from either side', () => {
  const plan = planOrders(options, skus);
  const early = plan.filter((o) => o.payment?.kind === 'early');
  const racing = plan.flatMap((o) => (o.payment?.kind === 'racing' ? [o.payment.offsetMs] : []));
  expect(early.length / plan.length).toBeCloseTo(0.65, 1);
  expect(racing.length / plan.length).toBeCloseTo(0.05, 1);
  expect(racing.some((ms) => ms < 0) && racing.some((ms) => ms > 0)).toBe(true);
  expect(racing.every((ms) => Math.abs(ms) <= 200)).toBe(true);
  for (const o of early) {
    if (o.payment?.kind !== 'early') continue;
    expect(o.payment.atFraction).toBeGreaterThanOrEqual(0.1);
    expect(o.payment.atFraction).toBeLessThanOrEqual(0.8);
  }
  expect(plan.every((o) => o.items.length >= 1 && o.items.length <= 3)).toBe(true);
});

test('one time scale divides every shop duration; a poller is never asked to spin', () => {
  expect(scaledDurations(60)).toEqual({ shortWindowSeconds: REAL_SECONDS.shortWindow / 60, longWindowSeconds: REAL_SECONDS.longWindow / 60, cronPeriodMs: 1000, pollPeriodMs: 17 });
  expect(scaledDurations(1)).toEqual({ shortWindowSeconds: 300, longWindowSeconds: 1800, cronPeriodMs: 60_000, pollPeriodMs: 1000 });
  expect(scaledDurations(1000).pollPeriodMs).toBe(10);
  expect(scaledDurations(1000).shortWindowSeconds).toBe(1);
});

test('an early payment lands within its window, a racing one around the deadline', () => {
  expect(paymentTime({ kind: 'early', atFraction: 0.5 }, 10_000, 30, 40_000)).toBe(25_000);
  expect(paymentTime({ kind: 'racing', offsetMs: -120 }, 10_000, 30, 40_000)).toBe(39_880);
});
