import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const ID_BYTES = 16;
const pool = Buffer.alloc(POOL_BYTES);
let used = POOL_BYTES;

/**
 * A new lease id: 128 random bits as 32 hex digits. The bytes come from a pool refilled 4 KiB
 * at a time: one randomBytes(16) per claimed command was ~2 % of a claim's CPU (profile).
 */
export function newLeaseId(): string {
  if (used === POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const id = pool.toString('hex', used, used + ID_BYTES);
  used += ID_BYTES;
  return id;
}
