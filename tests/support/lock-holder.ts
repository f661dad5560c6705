/**
 * A transaction of the test's own that holds row locks, so that an activity stops inside its
 * own transaction (it waits for the lock) exactly when the test wants to inject a fault there.
 * It also counts the backends a given worker has open, by the `application_name` the worker's
 * DATABASE_URL sets.
 */
import { Client } from 'pg';

export class LockHolder {
  private constructor(
    private readonly holder: Client,
    // pg_stat_activity is a snapshot per transaction, so it is read outside the holder's.
    private readonly observer: Client,
  ) {}

  static async open(databaseUrl: string): Promise<LockHolder> {
    const [holder, observer] = [new Client({ connectionString: databaseUrl }), new Client({ connectionString: databaseUrl })];
    for (const client of [holder, observer]) {
      // A test that crashes the server kills these connections too; that is expected, not an error.
      client.on('error', () => undefined);
      await client.connect();
    }
    await holder.query('BEGIN');
    return new LockHolder(holder, observer);
  }

  /**
   * Locks an order's row against updates (not against the foreign-key checks of inserts), so
   * its release or commit writes its ledger rows and counters and then waits, uncommitted, at
   * the order's status update.
   */
  async lockOrder(orderId: string): Promise<void> {
    await this.holder.query('SELECT id FROM orders WHERE id = $1 FOR NO KEY UPDATE', [orderId]);
  }

  /**
   * Locks a product's row, so a reservation of it waits inside its transaction at that sku's update.
   * The lock a concurrent hold takes (NO KEY UPDATE): it lets the API record new orders' items,
   * whose foreign key only needs KEY SHARE on the product.
   */
  async lockProduct(sku: string): Promise<void> {
    await this.holder.query('SELECT sku FROM products WHERE sku = $1 FOR NO KEY UPDATE', [sku]);
  }

  /** Connections of `applicationName` to this database, or only those waiting for a lock. */
  async backendsOf(applicationName: string, only: 'all' | 'waiting-for-lock' = 'all'): Promise<number> {
    const { rows } = await this.observer.query<{ count: number }>(
      `SELECT count(*)::int AS count FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = $1 AND ($2 = 'all' OR wait_event_type = 'Lock')`,
      [applicationName, only],
    );
    return rows[0]?.count ?? 0;
  }

  /** Ends the transaction, letting the waiting activities go on. */
  async release(): Promise<void> {
    await this.holder.query('ROLLBACK');
  }

  async close(): Promise<void> {
    await Promise.all([this.holder.end().catch(() => undefined), this.observer.end().catch(() => undefined)]);
  }
}
