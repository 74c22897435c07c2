import { HubError } from '../core/errors.ts';
import { findValueProblem, type QueryDefinition, type ScalarValue } from './query-definition.ts';

/**
 * Parameter values by name. An optional parameter with no value and no default is absent, and
 * the conditions that use it are left out of the query.
 */
export type BoundParams = Record<string, ScalarValue>;

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const describeValue = (value: unknown) => {
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
};

/** Checks the caller's parameter values against the definition and applies defaults. */
export function bindParams(def: QueryDefinition, supplied: unknown): BoundParams {
  if (supplied !== undefined && supplied !== null && !isPlainObject(supplied)) {
    throw new HubError('invalid_parameter', 400, 'params: must be an object of parameter values by name', {
      parameters: [],
    });
  }
  const given: Record<string, unknown> = isPlainObject(supplied) ? supplied : {};
  const problems: Array<{ name: string; message: string }> = [];
  for (const name of Object.keys(given)) {
    if (!Object.hasOwn(def.params, name))
      problems.push({
        name,
        message: `unknown parameter (this query takes: ${Object.keys(def.params).join(', ') || 'none'})`,
      });
  }
  const bound: BoundParams = {};
  for (const [name, param] of Object.entries(def.params)) {
    const value = Object.hasOwn(given, name) ? given[name] : undefined;
    if (value === undefined || value === null) {
      if (param.default !== undefined) bound[name] = param.default;
      else if (param.required)
        problems.push({ name, message: `required ${param.type} parameter is missing` });
      continue;
    }
    const problem = findValueProblem(param.type, value);
    if (problem !== null) problems.push({ name, message: `${problem}, got ${describeValue(value)}` });
    else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
      bound[name] = value;
  }
  if (problems.length > 0) {
    throw new HubError(
      'invalid_parameter',
      400,
      problems.map((p) => `params.${p.name}: ${p.message}`).join('; '),
      {
        parameters: problems.map((p) => p.name),
      },
    );
  }
  return bound;
}
