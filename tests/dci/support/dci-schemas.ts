import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse as parseYaml } from 'yaml';

const SPEC_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../../server/dci/spec');
export const YAML_FILES = {
  social: 'social_api_v1.0.0.yaml',
  crvs: 'registry_core_api_v1.0.0.yaml',
  authz: 'authz_core_api_v1.0.0.yaml',
  jwks: 'jwks_core_api_v1.0.0.yaml',
} as const;
export type SpecName = keyof typeof YAML_FILES;

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/**
 * Replaces every local $ref by what it points to. The social YAML points into paths and even
 * into an `example`, places ajv does not treat as schemas, so the document is inlined first.
 */
function inlineRefs(doc: unknown): unknown {
  const resolving = new Set<string>();
  const resolved = new Map<string, unknown>();
  const lookup = (pointer: string): unknown => {
    let node: unknown = doc;
    for (const raw of pointer.replace(/^#\//, '').split('/')) {
      const part = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
      // A pointer may pass through another $ref on its way (the social YAML's do).
      const via = (node as { $ref?: unknown }).$ref;
      if (typeof via === 'string' && via.startsWith('#/')) node = lookup(via);
      node = (node as Record<string, unknown>)[part];
      if (node === undefined) throw new Error(`unresolvable $ref ${pointer}`);
    }
    return node;
  };
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (typeof node !== 'object' || node === null) return node;
    const ref = (node as { $ref?: unknown }).$ref;
    if (typeof ref === 'string' && ref.startsWith('#/')) {
      if (resolved.has(ref)) return resolved.get(ref);
      if (resolving.has(ref)) throw new Error(`recursive $ref ${ref}`);
      resolving.add(ref);
      const value = walk(lookup(ref));
      resolving.delete(ref);
      resolved.set(ref, value);
      return value;
    }
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, walk(v)]));
  };
  return walk(doc);
}

/** One ajv over the four YAML documents, each inlined and added whole under its name. */
function buildAjv(): Ajv {
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
  addFormats(ajv);
  // cdpi_PersonId writes a regular expression where OpenAPI expects a format name.
  ajv.addFormat('^[a-zA-Z0-9.-]+@[a-zA-Z0-9.-]+$', /^[a-zA-Z0-9.-]+@[a-zA-Z0-9.-]+$/);
  for (const [name, file] of Object.entries(YAML_FILES)) {
    ajv.addSchema(
      inlineRefs(parseYaml(readFileSync(path.join(SPEC_DIR, file), 'utf8'))) as object,
      `${name}.yaml`,
    );
  }
  return ajv;
}

const ajv = buildAjv();
const cache = new Map<string, ValidateFunction>();

const escapePointer = (part: string) => part.replace(/~/g, '~0').replace(/\//g, '~1');

/** The validator of a schema at a JSON pointer of one YAML document. */
export function schemaAt(spec: SpecName, pointer: string): ValidateFunction {
  const ref = `${spec}.yaml#${pointer}`;
  let validate = cache.get(ref);
  if (validate === undefined) {
    validate = ajv.compile({ $ref: ref });
    cache.set(ref, validate);
  }
  return validate;
}

function operationPointer(apiPath: string, method = 'post'): string {
  return `/paths/${escapePointer(apiPath)}/${method}`;
}

/** The request body schema of a path, application/json. */
export function requestSchema(spec: SpecName, apiPath: string): ValidateFunction {
  return schemaAt(spec, `${operationPointer(apiPath)}/requestBody/content/application~1json/schema`);
}

/** The response schema of a path for a status: the status's own entry, else default. */
export function responseSchema(
  spec: SpecName,
  apiPath: string,
  status: number,
  method = 'post',
): ValidateFunction {
  const doc = ajv.getSchema(`${spec}.yaml`)!.schema as {
    paths: Record<
      string,
      Record<string, { responses: Record<string, { $ref?: string; content?: unknown }> }>
    >;
  };
  const responses = doc.paths[apiPath]![method]!.responses;
  const key = String(status) in responses ? String(status) : 'default';
  return schemaAt(
    spec,
    `${operationPointer(apiPath, method)}/responses/${key}/content/application~1json/schema`,
  );
}

/** Throws with ajv's errors when the value does not validate. */
export function assertValid(validate: ValidateFunction, value: unknown, what: string): void {
  if (validate(value)) return;
  throw new Error(
    `${what} does not validate against the DCI YAML: ${ajv.errorsText(validate.errors, { separator: '\n  ' })}\n${JSON.stringify(value).slice(0, 2000)}`,
  );
}
