import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

export const DCI_REGISTRIES = ['social', 'crvs'] as const;
export type DciRegistry = (typeof DCI_REGISTRIES)[number];

const columnRef = z.string().regex(/^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$/, 'must be "table.column"');
const scalar = z.union([z.string(), z.number(), z.boolean()]);

const collection = z
  .object({
    record: z.enum(['person', 'member', 'group']),
    tables: z
      .array(z.string().regex(/^[a-z][a-z0-9_]*$/))
      .min(1)
      .max(8),
    where: z
      .array(z.object({ column: columnRef, op: z.enum(['=', '!=']), value: scalar }).strict())
      .default([]),
    group_key: columnRef.optional(),
    members: z.string().optional(),
    attributes: z.record(z.string().min(1), columnRef),
    codes: z.record(z.string(), z.record(z.string(), scalar)).default({}),
  })
  .strict();

const mappingSchema = z
  .object({
    identifiers: z.array(z.string().min(1)).min(1),
    registries: z.record(
      z.enum(DCI_REGISTRIES),
      z.object({ default_collection: z.string(), collections: z.record(z.string(), collection) }).strict(),
    ),
  })
  .strict();

export type DciCollection = z.infer<typeof collection> & { name: string };

export interface DciMapping {
  identifiers: string[];
  registries: Partial<
    Record<DciRegistry, { defaultCollection: string; collections: Map<string, DciCollection> }>
  >;
}

const DEFAULT_MAPPING = path.join(path.dirname(fileURLToPath(import.meta.url)), 'dci-mapping.yaml');

/**
 * Reads and checks the mapping file once per process. A collection's tables and columns are
 * checked against the catalog at search time, since connectors may add tables later.
 */
export function loadDciMapping(file: string | null): DciMapping {
  const source = file ?? DEFAULT_MAPPING;
  const parsed = mappingSchema.safeParse(parseYaml(readFileSync(source, 'utf8')));
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`DCI mapping ${source}: ${fields}`);
  }
  const registries: DciMapping['registries'] = {};
  for (const [registry, spec] of Object.entries(parsed.data.registries) as Array<
    [DciRegistry, (typeof parsed.data.registries)[DciRegistry]]
  >) {
    if (spec === undefined) continue;
    const collections = new Map<string, DciCollection>();
    for (const [name, c] of Object.entries(spec.collections)) {
      for (const ref of [
        ...Object.values(c.attributes),
        ...c.where.map((w) => w.column),
        ...(c.group_key ? [c.group_key] : []),
      ]) {
        if (!c.tables.includes(ref.split('.')[0]!))
          throw new Error(
            `DCI mapping ${source}: ${registry}.${name}: ${ref} is not in the collection's tables`,
          );
      }
      collections.set(name.toLowerCase(), { ...c, name });
    }
    if (!collections.has(spec.default_collection.toLowerCase())) {
      throw new Error(`DCI mapping ${source}: ${registry}.default_collection names no collection`);
    }
    registries[registry] = { defaultCollection: spec.default_collection, collections };
  }
  return { identifiers: parsed.data.identifiers, registries };
}

/** The column an attribute names in a collection: exact, then case-insensitive, then the last part of a dotted path. */
export function findAttributeColumn(
  c: DciCollection,
  attribute: string,
): { name: string; column: string } | null {
  const candidates = [attribute, attribute.split('.').pop() ?? attribute];
  for (const candidate of candidates) {
    const lower = candidate.toLowerCase();
    const name =
      Object.keys(c.attributes).find((a) => a === candidate) ??
      Object.keys(c.attributes).find((a) => a.toLowerCase() === lower);
    if (name !== undefined) return { name, column: c.attributes[name]! };
  }
  return null;
}
