import assert from 'node:assert/strict';
import { HubError } from '../../warehouse/core/errors.ts';

interface HubErrorExpectation {
  code?: string;
  status?: number;
  message?: RegExp;
  /** Words the message must name, each as written. */
  naming?: readonly string[];
}

// It asserts rather than answering false, so a mismatch names what was expected and the error that came.
const matchHubError =
  ({ code, status, message, naming = [] }: HubErrorExpectation) =>
  (err: unknown): boolean => {
    assert.ok(err instanceof HubError, `expected a HubError, got ${String(err)}`);
    const seen = `${err.code} (${err.status}): ${err.message}`;
    if (code !== undefined) assert.equal(err.code, code, `expected a HubError ${code}, got ${seen}`);
    if (status !== undefined) assert.equal(err.status, status, `expected status ${status}, got ${seen}`);
    if (message !== undefined)
      assert.match(err.message, message, `expected a message ${message}, got ${seen}`);
    for (const word of naming)
      assert.ok(err.message.includes(word), `expected a message naming ${word}, got ${seen}`);
    return true;
  };

/**
 * A validator for `assert.rejects` and `assert.throws`: the error is a HubError with this code,
 * and with this status and a message matching this pattern when they are given.
 */
export const isHubError = (code: string, status?: number, message?: RegExp) =>
  matchHubError({ code, status, message });

/** The same for an error whose code the test leaves open: any HubError whose message matches. */
export const isHubErrorMatching = (message: RegExp) => matchHubError({ message });

/** `fn` refuses the request: a HubError 400 with this code, whose message names each fragment. */
export function assertHubError(fn: () => unknown, code: string, ...fragments: string[]): void {
  assert.throws(fn, matchHubError({ code, status: 400, naming: fragments }));
}
