/**
 * `prisma generate` without network access: the CLI insists on a schema-engine binary
 * path but never runs it for generate, so any existing file satisfies it (platform.md).
 */
import { execFileSync } from 'node:child_process';

const env = { ...process.env };
env.PRISMA_SCHEMA_ENGINE_BINARY ??= process.execPath;
env.PRISMA_HIDE_UPDATE_MESSAGE = '1';
execFileSync(process.execPath, [require.resolve('prisma/build/index.js'), 'generate'], { stdio: 'inherit', env });
