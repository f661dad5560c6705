/** Connection settings shared by the API's client and the worker's native connection. */
import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow';
import type { TemporalConfig } from './config';

export interface TemporalConnectionOptions {
  address: string;
  tls?: TLSConfig;
  apiKey?: string;
}

/** Reads certificate files once; both the client and the worker connect with the result. */
export function temporalConnectionOptions(
  config: TemporalConfig,
  readFile: (path: string) => Buffer = readFileSync,
): TemporalConnectionOptions {
  const options: TemporalConnectionOptions = { address: config.address };
  if (config.apiKey !== undefined) options.apiKey = config.apiKey;
  if (config.tls) {
    const tls: TLSConfig = {};
    const { clientCertPath, clientKeyPath, serverRootCaPath, serverName } = config.tls;
    if (clientCertPath !== undefined && clientKeyPath !== undefined) {
      tls.clientCertPair = { crt: readFile(clientCertPath), key: readFile(clientKeyPath) };
    }
    if (serverRootCaPath !== undefined) tls.serverRootCACertificate = readFile(serverRootCaPath);
    if (serverName !== undefined) tls.serverNameOverride = serverName;
    options.tls = tls;
  }
  return options;
}

export async function connectTemporalClient(config: TemporalConfig): Promise<Client> {
  const connection = await Connection.connect(temporalConnectionOptions(config));
  return new Client({ connection, namespace: config.namespace });
}
