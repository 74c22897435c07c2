import type { z } from 'zod';
import { invalidRequest } from '../../warehouse/core/errors.ts';

/** zod at the edge: a 400 that names every bad field. */
export function parseInput<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const fields = parsed.error.issues.map((i) => `${i.path.join('.') || what}: ${i.message}`);
  throw invalidRequest(`invalid ${what}: ${fields.join('; ')}`, { fields });
}
