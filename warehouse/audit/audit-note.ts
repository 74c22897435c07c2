/**
 * What a use case tells the audit about an answer it returns: the details worth keeping and the
 * persons whose data it holds (including those whose rows are returned without their ID). The
 * edge that sends the answer (the API's audit middleware) writes it, with the outcome, as one
 * event before the answer leaves; a symbol keeps it out of the JSON.
 */
export interface AuditNote {
  details: Record<string, unknown>;
  subjects: string[];
}

const AUDIT_NOTE = Symbol('audit note');

export function attachAuditNote<T extends object>(body: T, note: AuditNote): T {
  Object.defineProperty(body, AUDIT_NOTE, { value: note, enumerable: false });
  return body;
}

export function readAuditNote(body: unknown): AuditNote | null {
  if (typeof body !== 'object' || body === null) return null;
  return (body as { [AUDIT_NOTE]?: AuditNote })[AUDIT_NOTE] ?? null;
}
