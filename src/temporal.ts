/** Connection settings shared by the API's client and the worker's native connection. */
import { readFileSync } from 'node:fs';
import { Client, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow';
import { ConfigError, type PemSource, type TemporalConfig } from './config';

export interface TemporalConnectionOptions {
  address: string;
  /** Absent: plain TCP. */
  tls?: TLSConfig;
  apiKey?: string;
}

export type ReadFile = (path: string) => Buffer;

/** Reads certificate files once; both the client and the worker connect with the result. */
export function temporalConnectionOptions(
  config: TemporalConfig,
  readFile: ReadFile = readFileSync,
): TemporalConnectionOptions {
  const options: TemporalConnectionOptions = { address: config.address };
  if (config.apiKey !== undefined) options.apiKey = config.apiKey;
  if (config.tls) {
    const tls: TLSConfig = {};
    const { clientCert, clientKey, serverRootCa, serverName } = config.tls;
    if (clientCert !== undefined && clientKey !== undefined) {
      tls.clientCertPair = { crt: pemBytes(clientCert, readFile), key: pemBytes(clientKey, readFile) };
    }
    if (serverRootCa !== undefined) tls.serverRootCACertificate = pemBytes(serverRootCa, readFile);
    if (serverName !== undefined) tls.serverNameOverride = serverName;
    options.tls = tls;
  }
  return options;
}

function pemBytes(source: PemSource, readFile: ReadFile): Buffer {
  if ('pem' in source) return Buffer.from(source.pem, 'utf8');
  try {
    return readFile(source.path);
  } catch (error) {
    throw new ConfigError(`cannot read Temporal TLS file ${source.path}: ${(error as Error).message}`);
  }
}

/**
 * The API's Temporal calls (docs/failure-modes.md): connecting gives up after 5 s; a call that
 * fails with a retryable gRPC status (UNAVAILABLE, ...) is tried 4 times in all, about 1 s of
 * back-off, instead of the SDK's 10 (about 20 s), so an unreachable server is an answer (503)
 * within seconds. Each call's own deadline is set where it is made (src/api/checkout.ts).
 */
export const TEMPORAL_CONNECT_TIMEOUT_MS = 5_000;
export const TEMPORAL_CALL_ATTEMPTS = 4;

export async function connectTemporalClient(config: TemporalConfig): Promise<Client> {
  const connection = await Connection.connect({
    ...temporalConnectionOptions(config),
    connectTimeout: TEMPORAL_CONNECT_TIMEOUT_MS,
    interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions({ maxAttempts: TEMPORAL_CALL_ATTEMPTS }))],
  });
  return new Client({ connection, namespace: config.namespace });
}
