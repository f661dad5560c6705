/**
 * Scoped API keys (docs/api.md, "Callers and keys"): what a key looks like, what is stored of it
 * (its SHA-256, never the key), and the api_keys table's operations, for the operator routes and
 * `npm run keys` alike.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { PrismaClient } from '../../prisma/generated/client';
import { DEFAULT_CHANNEL } from '../../activities/types';

export const API_KEY_SCOPES = ['orders', 'operator'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

/** Who is calling: a storefront key of one channel, or an operator key (every channel). */
export type Caller = { keyId: string; scope: 'orders'; channel: string } | { keyId: string; scope: 'operator' };

/** Recognisable in a leaked config or a log line, so secret scanners and people can spot one. */
export const API_KEY_PREFIX = 'ck_';
/** 256 random bits: a plain SHA-256 of such a key is as safe to store as a slow hash of a password. */
const API_KEY_BYTES = 32;

export function generateApiKey(): string {
  return `${API_KEY_PREFIX}${randomBytes(API_KEY_BYTES).toString('base64url')}`;
}

/** What is stored of a key, and what a presented key is looked up by. */
export function apiKeyDigest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** A key as operators see it: never the key itself. */
export interface ApiKeyView {
  id: string;
  name: string;
  scope: ApiKeyScope;
  /** The storefront key's channel; null for an operator key. */
  channel: string | null;
  createdAt: string;
  revokedAt?: string;
  lastUsedAt?: string;
}

export interface NewApiKey {
  name: string;
  scope: ApiKeyScope;
  /** A storefront key's channel (default `default`); an operator key has none. */
  channel?: string;
}

interface ApiKeyRow {
  id: string;
  name: string;
  scope: ApiKeyScope;
  channel: string | null;
  createdAt: Date;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

const VIEW_FIELDS = { id: true, name: true, scope: true, channel: true, createdAt: true, revokedAt: true, lastUsedAt: true } as const;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class ApiKeyStore {
  constructor(private readonly prisma: PrismaClient) {}

  /** Creates a key; the answer holds the key itself, which is shown this once. */
  async create(input: NewApiKey): Promise<{ key: string; apiKey: ApiKeyView; digest: Buffer }> {
    const key = generateApiKey();
    const digest = apiKeyDigest(key);
    const row = await this.prisma.apiKey.create({
      data: {
        id: randomUUID(),
        name: input.name,
        scope: input.scope,
        channel: input.scope === 'orders' ? (input.channel ?? DEFAULT_CHANNEL) : null,
        keyHash: new Uint8Array(digest),
      },
      select: VIEW_FIELDS,
    });
    return { key, apiKey: toView(row), digest };
  }

  /** Every key, revoked ones too, oldest first. */
  async list(): Promise<ApiKeyView[]> {
    const rows = await this.prisma.apiKey.findMany({ orderBy: [{ createdAt: 'asc' }, { id: 'asc' }], select: VIEW_FIELDS });
    return rows.map(toView);
  }

  /** Revokes the key (again: no change); undefined when the id names no key. */
  async revoke(id: string): Promise<{ apiKey: ApiKeyView; digest: Buffer } | undefined> {
    if (!UUID.test(id)) return undefined;
    const [row] = await this.prisma.$queryRaw<{ id: string }[]>`
      UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = ${id}::uuid RETURNING id::text`;
    if (!row) return undefined;
    const revoked = await this.prisma.apiKey.findUniqueOrThrow({ where: { id }, select: { ...VIEW_FIELDS, keyHash: true } });
    const { keyHash, ...view } = revoked;
    return { apiKey: toView(view), digest: Buffer.from(keyHash) };
  }

  /**
   * The caller a digest names, or undefined. An unknown key and a revoked one are the same here:
   * one query by digest that finds no row, so neither answer nor timing tells them apart.
   */
  async findActive(digest: Buffer): Promise<Caller | undefined> {
    const [row] = await this.prisma.$queryRaw<{ id: string; scope: ApiKeyScope; channel: string | null }[]>`
      SELECT id::text, scope::text AS scope, channel FROM api_keys WHERE key_hash = ${digest} AND revoked_at IS NULL`;
    if (!row) return undefined;
    if (row.scope === 'operator') return { keyId: row.id, scope: 'operator' };
    return { keyId: row.id, scope: 'orders', channel: row.channel ?? DEFAULT_CHANNEL };
  }

  /** Records when each key was last used, in one statement; never moves a time back (another replica's may be later). */
  async recordUses(uses: ReadonlyMap<string, Date>): Promise<void> {
    if (uses.size === 0) return;
    const ids = [...uses.keys()];
    const times = ids.map((id) => uses.get(id)?.toISOString());
    await this.prisma.$executeRaw`
      UPDATE api_keys k SET last_used_at = GREATEST(k.last_used_at, u.used_at)
        FROM unnest(${ids}::uuid[], ${times}::timestamptz[]) AS u(id, used_at)
       WHERE k.id = u.id`;
  }
}

function toView(row: ApiKeyRow): ApiKeyView {
  return {
    id: row.id,
    name: row.name,
    scope: row.scope,
    channel: row.channel,
    createdAt: row.createdAt.toISOString(),
    ...(row.revokedAt && { revokedAt: row.revokedAt.toISOString() }),
    ...(row.lastUsedAt && { lastUsedAt: row.lastUsedAt.toISOString() }),
  };
}
