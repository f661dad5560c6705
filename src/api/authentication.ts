/**
 * Who is calling: the bearer key of a request, checked against the bootstrap keys and the
 * api_keys table through a short-lived per-replica cache, before the body is read. A revocation
 * reaches this replica within DEFAULTS.apiKeyCacheSeconds; lastUsedAt is written in batches.
 */
import { timingSafeEqual } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import { DEFAULT_CHANNEL } from '../../activities/types';
import { DEFAULTS } from '../config';
import type { Logger } from '../logger';
import { apiKeyDigest, type ApiKeyScope, type ApiKeyStore, type Caller } from './api-keys';
import { ApiError } from './errors';

/** The keys from the environment: valid without the database, never revocable there. */
export interface BootstrapKeys {
  /** ADMIN_TOKEN: an operator key. */
  adminToken: string;
  /** STOREFRONT_KEY: a storefront key of channel `default`. */
  storefrontKey?: string;
}

export interface AuthenticatorOptions {
  store: ApiKeyStore;
  bootstrap: BootstrapKeys;
  logger: Logger;
  cacheMs?: number;
  lastUsedFlushMs?: number;
  /** Entries kept at most; past it the oldest go first (a flood of random keys cannot grow it). */
  maxCached?: number;
}

interface Cached {
  /** Null: no valid key has this digest (unknown or revoked alike). */
  caller: Caller | null;
  freshUntilMs: number;
}

/** Ids of the bootstrap keys in logs and lastUsedAt bookkeeping (they have no row). */
export const BOOTSTRAP_OPERATOR_ID = 'bootstrap-operator';
export const BOOTSTRAP_STOREFRONT_ID = 'bootstrap-storefront';

const DEFAULT_MAX_CACHED = 10_000;

export class Authenticator {
  private readonly bootstrap: { digest: Buffer; caller: Caller }[];
  private readonly cache = new Map<string, Cached>();
  /** Lookups in flight by digest: a burst with one new key costs one query. */
  private readonly lookups = new Map<string, Promise<Caller | null>>();
  /** Keys seen since the last flush, with when they were last seen. */
  private uses = new Map<string, Date>();
  /** Bumped by forget(): a lookup that started before it must not cache what it read. */
  private forgetCount = 0;
  private readonly cacheMs: number;
  private readonly maxCached: number;
  private readonly flushTimer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly options: AuthenticatorOptions) {
    const { adminToken, storefrontKey } = options.bootstrap;
    this.bootstrap = [
      { digest: apiKeyDigest(adminToken), caller: { keyId: BOOTSTRAP_OPERATOR_ID, scope: 'operator' } },
      ...(storefrontKey === undefined
        ? []
        : [{ digest: apiKeyDigest(storefrontKey), caller: { keyId: BOOTSTRAP_STOREFRONT_ID, scope: 'orders', channel: DEFAULT_CHANNEL } as const }]),
    ];
    this.cacheMs = options.cacheMs ?? DEFAULTS.apiKeyCacheSeconds * 1000;
    this.maxCached = options.maxCached ?? DEFAULT_MAX_CACHED;
    this.flushTimer = setInterval(() => void this.flushLastUsed(), options.lastUsedFlushMs ?? DEFAULTS.apiKeyLastUsedFlushSeconds * 1000);
    // The timer alone must not keep a process (or a test) alive.
    this.flushTimer.unref();
  }

  /** The caller a presented key names, or null for an unknown or revoked key. */
  async identify(key: string): Promise<Caller | null> {
    const digest = apiKeyDigest(key);
    // Equal-length digests compared in constant time, every bootstrap key each time.
    let bootstrap: Caller | null = null;
    for (const candidate of this.bootstrap) {
      if (timingSafeEqual(digest, candidate.digest)) bootstrap = candidate.caller;
    }
    if (bootstrap) return bootstrap;
    const caller = await this.lookUp(digest);
    if (caller) this.uses.set(caller.keyId, new Date());
    return caller;
  }

  /** Drops what this replica knows about a key (on revocation or creation here: effective at once). */
  forget(digest: Buffer): void {
    const id = digest.toString('base64');
    this.forgetCount++;
    this.cache.delete(id);
    this.lookups.delete(id);
  }

  /** Writes the lastUsedAt of the keys seen since the last flush (GET /admin/api-keys asks first). */
  flushLastUsed(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      const batch = this.uses;
      if (batch.size === 0) return;
      this.uses = new Map();
      try {
        await this.options.store.recordUses(batch);
      } catch (error) {
        // Kept for the next flush, unless a later use has replaced it.
        for (const [id, at] of batch) if (!this.uses.has(id)) this.uses.set(id, at);
        this.options.logger.warn({ err: error }, 'could not record when API keys were last used; will retry');
      }
    });
    return this.flushing;
  }

  /** Stops the flush timer and writes what is pending (the API's shutdown). */
  async close(): Promise<void> {
    clearInterval(this.flushTimer);
    await this.flushLastUsed();
  }

  /**
   * By digest, from the cache while fresh, else from the database. The lookup is by the digest
   * of what was sent, so no comparison of the key itself can leak how much of it matched; a
   * valid, an unknown and a revoked key take the same path and are cached alike.
   */
  private async lookUp(digest: Buffer): Promise<Caller | null> {
    const id = digest.toString('base64');
    const cached = this.cache.get(id);
    if (cached && Date.now() < cached.freshUntilMs) return cached.caller;
    let lookup = this.lookups.get(id);
    if (!lookup) {
      const forgetCountAtStart = this.forgetCount;
      const started = this.options.store.findActive(digest).then((found) => {
        const caller = found ?? null;
        // It may have read the key before a revocation here committed: answer, but keep nothing.
        if (this.forgetCount === forgetCountAtStart) this.remember(id, caller);
        return caller;
      });
      lookup = started.finally(() => {
        if (this.lookups.get(id) === lookup) this.lookups.delete(id);
      });
      this.lookups.set(id, lookup);
    }
    return lookup;
  }

  private remember(id: string, caller: Caller | null): void {
    this.cache.delete(id);
    if (this.cache.size >= this.maxCached) {
      // Insertion order is age order: the first entry is the oldest.
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(id, { caller, freshUntilMs: Date.now() + this.cacheMs });
  }
}

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const REALM = 'realm="checkout"';

/**
 * The route needs a key of `scope`: 401 UNAUTHORIZED without a valid one, 403 FORBIDDEN with a key
 * of another scope. Mounted before any body parser, so nothing of the body is read before this.
 */
export function requireKey(authenticator: Authenticator, scope: ApiKeyScope): RequestHandler {
  return async (req, res, next) => {
    const header = req.header('Authorization');
    if (header === undefined) {
      throw unauthorized('this route needs Authorization: Bearer <key>', REALM);
    }
    const key = BEARER.exec(header)?.[1];
    if (key === undefined) {
      throw unauthorized('the Authorization header must be Bearer <key>', `${REALM}, error="invalid_request"`);
    }
    const caller = await authenticator.identify(key);
    if (!caller) throw unauthorized('the key is unknown or revoked', `${REALM}, error="invalid_token"`);
    if (caller.scope !== scope) {
      throw new ApiError('FORBIDDEN', `this route needs a key of scope ${scope}`, {
        headers: { 'WWW-Authenticate': `Bearer ${REALM}, error="insufficient_scope", scope="${scope}"` },
      });
    }
    noteCaller(res, caller);
    next();
  };
}

function unauthorized(message: string, challenge: string): ApiError {
  return new ApiError('UNAUTHORIZED', message, { headers: { 'WWW-Authenticate': `Bearer ${challenge}` } });
}

const CALLER = Symbol('caller');
type CallerResponse = Response & { [CALLER]?: Caller };

function noteCaller(res: Response, caller: Caller): void {
  (res as CallerResponse)[CALLER] = caller;
}

/** The caller requireKey admitted; only for routes behind it. */
export function callerOf(res: Response): Caller {
  const caller = (res as CallerResponse)[CALLER];
  if (!caller) throw new Error('callerOf: the route is not behind requireKey');
  return caller;
}

/** The storefront caller's channel (a route behind requireKey(..., 'orders')). */
export function channelOf(res: Response): string {
  const caller = callerOf(res);
  if (caller.scope !== 'orders') throw new Error('channelOf: the route is not behind a storefront key');
  return caller.channel;
}

/** The key's id for the request log (never the key). */
export function callerIdOf(res: { [CALLER]?: Caller } | object): string | undefined {
  return (res as { [CALLER]?: Caller })[CALLER]?.keyId;
}
