/** One error family for the whole hub: a stable code, an HTTP status, and optional details. */
export class HubError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, status: number, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'HubError';
    this.code = code;
    this.status = status;
    this.details = details;
  }
}

/** Seconds a refused (429) caller should wait, as the rate limit or the token throttle computed them. */
export function readRetryAfter(error: HubError): number | undefined {
  const retryAfter = error.details?.retry_after;
  return error.status === 429 && typeof retryAfter === 'number' ? retryAfter : undefined;
}

export const invalidRequest = (message: string, details?: Record<string, unknown>) =>
  new HubError('invalid_request', 400, message, details);

export const notFound = (message: string) => new HubError('not_found', 404, message);

export const conflict = (code: string, message: string) => new HubError(code, 409, message);

/** A connector definition that cannot be used; the message names the file and the field. */
export class DefinitionError extends HubError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('invalid_definition', 400, message, details);
    this.name = 'DefinitionError';
  }
}
