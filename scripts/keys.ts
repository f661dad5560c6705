/**
 * `npm run keys`: an operator's API keys, straight in the database (no API or operator key
 * needed, so the first keys can be made this way). In the image: `node dist/scripts/keys.js`.
 *
 *   npm run keys -- create --name "web shop" --scope orders --channel web   (prints the key, once)
 *   npm run keys -- create --name "on-call" --scope operator
 *   npm run keys -- list
 *   npm run keys -- revoke <id>     (every API replica refuses it within 5 s)
 */
import { parseArgs } from 'node:util';
import { ApiKeyStore, type ApiKeyView } from '../src/api/api-keys';
import { CreateApiKeyBody, parseOrThrow } from '../src/api/schemas';
import { ApiError } from '../src/api/errors';
import { loadDatabaseConfig } from '../src/config';
import { createPrismaClient } from '../src/db/client';

const USAGE = `usage:
  npm run keys -- create --name <name> --scope orders|operator [--channel <channel>]
  npm run keys -- list
  npm run keys -- revoke <id>`;

export async function runKeysCommand(args: string[], store: ApiKeyStore, print: (line: string) => void): Promise<void> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { name: { type: 'string' }, scope: { type: 'string' }, channel: { type: 'string' } },
  });
  const [command, ...rest] = positionals;
  switch (command) {
    case 'create': {
      const body = parseOrThrow(CreateApiKeyBody, { name: values.name, scope: values.scope, ...(values.channel !== undefined && { channel: values.channel }) });
      const { key, apiKey } = await store.create(body);
      print(`created ${describe(apiKey)}`);
      print(`key (shown this once, only its hash is stored): ${key}`);
      return;
    }
    case 'list': {
      const keys = await store.list();
      if (keys.length === 0) print('no API keys (ADMIN_TOKEN and STOREFRONT_KEY, if set, are valid besides)');
      for (const apiKey of keys) print(describe(apiKey));
      return;
    }
    case 'revoke': {
      const [id] = rest;
      if (id === undefined) throw new UsageError('revoke needs the key id (npm run keys -- list shows them)');
      const revoked = await store.revoke(id);
      if (!revoked) throw new UsageError(`no API key ${id}`);
      print(`revoked ${describe(revoked.apiKey)}; every API replica refuses it within 5 s`);
      return;
    }
    default:
      throw new UsageError(command === undefined ? 'no command' : `unknown command ${command}`);
  }
}

function describe(apiKey: ApiKeyView): string {
  const scope = apiKey.scope === 'orders' ? `storefront key of channel ${apiKey.channel ?? ''}` : 'operator key';
  const used = apiKey.lastUsedAt ? `last used ${apiKey.lastUsedAt}` : 'never used';
  const revoked = apiKey.revokedAt ? `, REVOKED ${apiKey.revokedAt}` : '';
  return `${apiKey.id}  ${JSON.stringify(apiKey.name)}  ${scope}  created ${apiKey.createdAt}, ${used}${revoked}`;
}

class UsageError extends Error {}

async function main(): Promise<void> {
  const prisma = createPrismaClient(loadDatabaseConfig().databaseUrl, 1);
  try {
    await runKeysCommand(process.argv.slice(2), new ApiKeyStore(prisma), (line) => console.log(line));
  } finally {
    await prisma.$disconnect();
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    if (error instanceof UsageError || error instanceof ApiError || (error instanceof Error && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))) {
      const details = error instanceof ApiError ? ` ${JSON.stringify(error.details)}` : '';
      console.error(`${error.message}${details}\n${USAGE}`);
    } else {
      console.error(error);
    }
    process.exit(1);
  });
}
