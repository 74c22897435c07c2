/** The DCI standard's acknowledgement error codes (the Error schema of the YAML files). */
export type DciErrorCode =
  | 'err.request.bad'
  | 'err.request.unauthorized'
  | 'err.request.forbidden'
  | 'err.request.not_found'
  | 'err.request.too_many_requests'
  | 'err.sender_id.invalid'
  | 'err.sender_uri.invalid'
  | 'err.receiver_id.invalid'
  | 'err.signature.missing'
  | 'err.signature.invalid'
  | 'err.encryption.invalid'
  | 'err.service.unavailable';

/** A message the hub refuses as a whole: answered with ack_status ERR and this code. */
export class DciError extends Error {
  readonly code: DciErrorCode;
  readonly status: number;

  /** Seconds until a refused (429) sender may try again, sent as Retry-After. */
  readonly retryAfter: number | undefined;

  constructor(code: DciErrorCode, status: number, message: string, retryAfter?: number) {
    super(message.slice(0, 999));
    this.name = 'DciError';
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

export const badRequest = (message: string) => new DciError('err.request.bad', 400, message);
