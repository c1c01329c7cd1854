import { describe, expectTypeOf, it, expect } from 'vitest';
import type { User } from './auth';
import type { AuthApi } from './auth';
import { route } from './contract';
import type { paths as JobPaths } from './generated/jobs';
import type { Job, JobsApi, SubmitJob } from './jobs';

// These assertions are checked by `tsc` (npm run typecheck): a change in either service's
// OpenAPI document that the client does not follow fails the build here or in the client.
describe('the typed client follows the OpenAPI documents', () => {
  it('derives bodies and answers from the documents', () => {
    expectTypeOf<Awaited<ReturnType<JobsApi['submit']>>>().toEqualTypeOf<{ job: Job }>();
    expectTypeOf<Awaited<ReturnType<JobsApi['list']>>['items']>().toEqualTypeOf<Job[]>();
    expectTypeOf<Awaited<ReturnType<AuthApi['login']>>['user']>().toEqualTypeOf<User>();
    expectTypeOf<SubmitJob>().toHaveProperty('priority');
    expectTypeOf<Job['status']>().toEqualTypeOf<
      'waiting' | 'pending' | 'scheduled' | 'running' | 'completed' | 'failed' | 'cancelled'
    >();
    expectTypeOf<Job['depends_on']>().toEqualTypeOf<string[]>();
    expectTypeOf<SubmitJob>().toHaveProperty('depends_on');
    expectTypeOf<User['role']>().toEqualTypeOf<'user' | 'admin'>();
  });

  it('fills path parameters, encoded', () => {
    expect(route<JobPaths, '/api/jobs/{id}/cancel'>('/api/jobs/{id}/cancel', { id: 'a/b' })).toBe('/api/jobs/a%2Fb/cancel');
    expect(() => route<JobPaths, '/api/jobs/{id}'>('/api/jobs/{id}')).toThrow(/missing route parameter id/);
    // @ts-expect-error a route the job service does not have
    route<JobPaths, '/api/jobs/nope'>('/api/jobs/nope');
  });
});
