import { describe, expect, it, vi } from 'vitest';
import type { HttpClient } from '../api/http';
import { JobsApi } from '../api/jobs';
import { describePaused } from './QueueControls';

describe('pause and resume', () => {
  it('reads the paused types: none, some, or every type', () => {
    expect(describePaused([])).toBe('Every job type is running.');
    expect(describePaused(['sleep', 'send_email'])).toBe('Paused: send_email, sleep.');
    expect(describePaused(['echo', 'hash', 'noop', 'send_email', 'sleep'])).toBe('Every job type is paused.');
  });

  it('posts one type, or an empty body for every type', async () => {
    const request = vi.fn(async () => ({ paused: ['sleep'] }));
    const api = new JobsApi({ request } as unknown as HttpClient);
    await expect(api.pause('sleep')).resolves.toEqual({ paused: ['sleep'] });
    await api.resume();
    expect(request.mock.calls).toEqual([
      ['POST', '/api/jobs/admin/pause', { body: { type: 'sleep' } }],
      ['POST', '/api/jobs/admin/resume', { body: {} }],
    ]);
  });
});
