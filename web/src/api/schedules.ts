import type { components, paths } from './generated/jobs';
import { route, type Operation, type RequestBody, type ResponseBody } from './contract';
import type { HttpClient } from './http';

export type Schedule = components['schemas']['Schedule'];
export type SchedulePage = components['schemas']['SchedulePage'];
export type CreateSchedule = RequestBody<Operation<paths, '/api/schedules', 'post'>>;

type Post<P extends keyof paths> = Operation<paths, P, 'post'>;
type Get<P extends keyof paths> = Operation<paths, P, 'get'>;
const r = route<paths, keyof paths & string>;

/** The job service's `/api/schedules` routes (API §6, periodic jobs). */
export class SchedulesApi {
  constructor(private readonly http: HttpClient) {}

  create(body: CreateSchedule): Promise<ResponseBody<Post<'/api/schedules'>, 201>> {
    return this.http.request('POST', r('/api/schedules'), { body });
  }

  /** Yours, or everyone's for an admin; newest first. */
  list(query: { limit?: number; cursor?: string } = {}): Promise<ResponseBody<Get<'/api/schedules'>, 200>> {
    return this.http.request('GET', r('/api/schedules'), { query });
  }

  get(id: string): Promise<ResponseBody<Get<'/api/schedules/{id}'>, 200>> {
    return this.http.request('GET', r('/api/schedules/{id}', { id }));
  }

  pause(id: string): Promise<ResponseBody<Post<'/api/schedules/{id}/pause'>, 200>> {
    return this.http.request('POST', r('/api/schedules/{id}/pause', { id }));
  }

  resume(id: string): Promise<ResponseBody<Post<'/api/schedules/{id}/resume'>, 200>> {
    return this.http.request('POST', r('/api/schedules/{id}/resume', { id }));
  }

  delete(id: string): Promise<void> {
    return this.http.request('DELETE', r('/api/schedules/{id}', { id }));
  }
}
