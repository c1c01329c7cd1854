import type { components, operations, paths } from './generated/jobs';
import { route, type Operation, type RequestBody, type ResponseBody } from './contract';
import type { HttpClient } from './http';

export type Job = components['schemas']['Job'];
export type JobStatus = components['schemas']['JobStatus'];
export type JobType = components['schemas']['JobType'];
export type JobPage = components['schemas']['JobPage'];
export type JobLogLine = components['schemas']['JobLogLine'];
export type SubmitJob = RequestBody<Operation<paths, '/api/jobs/submit', 'post'>>;
export type PausedTypes = components['schemas']['PausedTypes'];
export type ListQuery = NonNullable<operations['list_own']['parameters']['query']>;
export type AdminListQuery = NonNullable<operations['list_all']['parameters']['query']>;

export const JOB_STATUSES: readonly JobStatus[] = [
  'waiting',
  'pending',
  'scheduled',
  'running',
  'completed',
  'failed',
  'cancelled',
];
export const JOB_TYPES: readonly JobType[] = ['noop', 'echo', 'sleep', 'send_email', 'hash'];
export const FINAL_STATUSES: ReadonlySet<JobStatus> = new Set(['completed', 'failed', 'cancelled']);

/**
 * `GET /api/jobs/stats`. Written by hand: the job service's OpenAPI document describes this
 * response in prose only (API §4 and §6 give the shape).
 */
export interface JobStats {
  counts: Record<JobStatus, number>;
  queue_depth: Record<string, number>;
  /** The paused job types (every type listed when everything is paused). */
  paused: JobType[];
}

type Post<P extends keyof paths> = Operation<paths, P, 'post'>;
type Get<P extends keyof paths> = Operation<paths, P, 'get'>;
const r = route<paths, keyof paths & string>;

/** The job service's `/api/jobs` routes (API §4). */
export class JobsApi {
  constructor(private readonly http: HttpClient) {}

  submit(body: SubmitJob, idempotencyKey?: string): Promise<ResponseBody<Post<'/api/jobs/submit'>, 201>> {
    return this.http.request('POST', r('/api/jobs/submit'), {
      body,
      headers: idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : {},
    });
  }

  list(query: ListQuery): Promise<ResponseBody<Get<'/api/jobs/all'>, 200>> {
    return this.http.request('GET', r('/api/jobs/all'), { query });
  }

  listAll(query: AdminListQuery): Promise<ResponseBody<Get<'/api/jobs/admin/all'>, 200>> {
    return this.http.request('GET', r('/api/jobs/admin/all'), { query });
  }

  get(id: string): Promise<ResponseBody<Get<'/api/jobs/{id}'>, 200>> {
    return this.http.request('GET', r('/api/jobs/{id}', { id }));
  }

  /** The job's log lines, oldest first (its newest 1,000). */
  logs(id: string): Promise<ResponseBody<Get<'/api/jobs/{id}/logs'>, 200>> {
    return this.http.request('GET', r('/api/jobs/{id}/logs', { id }));
  }

  cancel(id: string): Promise<ResponseBody<Post<'/api/jobs/{id}/cancel'>, 200>> {
    return this.http.request('POST', r('/api/jobs/{id}/cancel', { id }));
  }

  retry(id: string): Promise<ResponseBody<Post<'/api/jobs/{id}/retry'>, 200>> {
    return this.http.request('POST', r('/api/jobs/{id}/retry', { id }));
  }

  stats(): Promise<JobStats> {
    return this.http.request('GET', r('/api/jobs/stats'));
  }

  /** Pauses `type`, or every type (admins only, API §6). */
  pause(type?: JobType): Promise<ResponseBody<Post<'/api/jobs/admin/pause'>, 200>> {
    return this.http.request('POST', r('/api/jobs/admin/pause'), { body: type ? { type } : {} });
  }

  /** Resumes `type`, or every type (admins only). */
  resume(type?: JobType): Promise<ResponseBody<Post<'/api/jobs/admin/resume'>, 200>> {
    return this.http.request('POST', r('/api/jobs/admin/resume'), { body: type ? { type } : {} });
  }
}
