/**
 * vitest globalSetup of the `postgres` project: one embedded PostgreSQL for the whole run,
 * stopped at its end. Test files read its address with `inject('postgresUrl')`.
 */
import type { TestProject } from 'vitest/node';
import { startPostgres } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPostgres();
  project.provide('postgresUrl', server.url);
  return server.stop;
}
