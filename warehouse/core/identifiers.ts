import { HubError } from './errors.ts';

/**
 * Table and column names reach SQL as identifiers and CASL as field names, where `*` is a
 * pattern; only plain lower-case snake case is accepted anywhere, so neither can be fooled.
 */
export const IDENTIFIER = /^[a-z][a-z0-9_]*$/;
export const MAX_IDENTIFIER_LENGTH = 48;

export function isIdentifier(name: unknown): name is string {
  return typeof name === 'string' && name.length <= MAX_IDENTIFIER_LENGTH && IDENTIFIER.test(name);
}

export function assertIdentifier(name: unknown, what: string): string {
  if (!isIdentifier(name)) {
    throw new HubError(
      'invalid_identifier',
      400,
      `${what} ${JSON.stringify(name)} must match ${IDENTIFIER.source} and be at most ${MAX_IDENTIFIER_LENGTH} characters`,
    );
  }
  return name;
}
