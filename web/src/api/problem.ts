import type { components } from './generated/jobs';

/** An RFC 9457 problem document as both services send it. */
export type Problem = components['schemas']['Problem'];

/**
 * A failed call: the service's problem document, or a stand-in when the service could not be
 * reached or answered something that is not a problem document.
 */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly title: string;
  readonly detail: string;
  /** Field name → messages, for `validation_failed` (e.g. `email`, `data.ms`). */
  readonly fieldErrors: Record<string, string[]>;
  /** The service's id of the failed request, to quote when reporting a problem. */
  readonly requestId: string | null;

  constructor(problem: {
    status: number;
    code: string;
    title: string;
    detail: string;
    errors?: Record<string, unknown> | null;
    request_id?: string | null;
  }) {
    super(problem.detail || problem.title);
    this.name = 'ApiError';
    this.status = problem.status;
    this.code = problem.code;
    this.title = problem.title;
    this.detail = problem.detail;
    this.fieldErrors = normalizeErrors(problem.errors);
    this.requestId = problem.request_id ?? null;
  }

  /** The messages for one field (empty when the problem names none). */
  forField(field: string): string[] {
    return this.fieldErrors[field] ?? [];
  }
}

function normalizeErrors(errors: Record<string, unknown> | null | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  if (!errors || typeof errors !== 'object') return out;
  for (const [field, value] of Object.entries(errors)) {
    if (Array.isArray(value)) out[field] = value.map(String);
    else if (value != null) out[field] = [String(value)];
  }
  return out;
}

function isProblem(value: unknown): value is Problem {
  if (!value || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return typeof v.code === 'string' && typeof v.status === 'number';
}

/** Turns a non-2xx response into an ApiError, whatever its body. */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (isProblem(body)) {
    return new ApiError({
      status: body.status,
      code: body.code,
      title: body.title ?? '',
      detail: body.detail ?? body.title ?? '',
      errors: body.errors ?? null,
      request_id: body.request_id ?? null,
    });
  }
  return new ApiError({
    status: response.status,
    code: response.status >= 500 ? 'server_error' : 'http_error',
    title: response.statusText || `HTTP ${response.status}`,
    detail:
      response.status >= 500
        ? 'The service had a problem. Try again in a moment.'
        : `The service answered ${response.status}.`,
  });
}

/** The error for a request that got no answer at all (service down, network, CORS). */
export function networkError(service: string): ApiError {
  return new ApiError({
    status: 0,
    code: 'network_error',
    title: 'Service unreachable',
    detail: `Cannot reach the ${service} service. Check your connection and try again.`,
  });
}

/** A readable message for any thrown value. */
export function messageOf(error: unknown): string {
  if (error instanceof ApiError) {
    const message = error.detail || error.title;
    // A server-side failure: the request id lets an operator find its log lines.
    return error.status >= 500 && error.requestId ? `${message} (request id ${error.requestId})` : message;
  }
  if (error instanceof Error) return error.message;
  return String(error);
}
