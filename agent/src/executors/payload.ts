import type { z } from 'zod';
import { PermanentError } from '../outcome.js';

/** The server validated the payload on submit; one that still does not parse will never run. */
export function parsePayload<T>(schema: z.ZodType<T>, payload: unknown): T {
  const parsed = schema.safeParse(payload);
  if (!parsed.success) throw new PermanentError(`invalid payload: ${parsed.error.message}`);
  return parsed.data;
}
