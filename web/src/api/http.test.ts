import { describe, expect, it, vi } from 'vitest';
import { HttpClient, SessionKeeper } from './http';
import { ApiError, messageOf } from './problem';

const problem = (status: number, code: string, extra: object = {}) =>
  new Response(JSON.stringify({ type: `urn:task-vault:problem:${code}`, title: code, status, detail: `detail of ${code}`, code, ...extra }), {
    status,
    headers: { 'content-type': 'application/problem+json' },
  });
const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

function setup(responses: Array<Response | Error>, refreshResult: boolean | Error = true) {
  const fetchMock = vi.fn(async (_url: string | URL | Request, _init?: RequestInit) => {
    const next = responses.shift();
    if (!next) throw new Error('unexpected request');
    if (next instanceof Error) throw next;
    return next;
  });
  const refresh = vi.fn(async () => {
    if (refreshResult instanceof Error) throw refreshResult;
    return refreshResult;
  });
  const expired = vi.fn();
  const session = new SessionKeeper(refresh, expired);
  const http = new HttpClient('http://jobs.test', 'job', session, fetchMock as unknown as typeof fetch);
  return { http, fetchMock, refresh, expired };
}

describe('HttpClient', () => {
  it('sends JSON with cookies and never a token header', async () => {
    const { http, fetchMock } = setup([json({ ok: 1 }, 201)]);
    await expect(http.request('POST', '/api/jobs/submit', { body: { type: 'noop' }, query: { a: 'b', empty: '' } })).resolves.toEqual({ ok: 1 });
    const [url, init] = fetchMock.mock.calls[0] as [string, RequestInit];
    expect(url).toBe('http://jobs.test/api/jobs/submit?a=b');
    expect(init.credentials).toBe('include');
    expect(init.body).toBe('{"type":"noop"}');
    expect(init.headers).toMatchObject({ 'content-type': 'application/json' });
    expect(Object.keys(init.headers as object)).not.toContain('authorization');
  });

  it('refreshes once on 401 and retries the call once', async () => {
    const { http, fetchMock, refresh, expired } = setup([problem(401, 'unauthorized'), json({ job: 1 })]);
    await expect(http.request('GET', '/api/jobs/x')).resolves.toEqual({ job: 1 });
    expect(refresh).toHaveBeenCalledTimes(1);
    expect(fetchMock).toHaveBeenCalledTimes(2);
    expect(expired).not.toHaveBeenCalled();
  });

  it('gives up after one refresh: a second 401 is the caller’s error, with no second refresh', async () => {
    const { http, refresh, fetchMock } = setup([problem(401, 'unauthorized'), problem(401, 'unauthorized')]);
    await expect(http.request('GET', '/x')).rejects.toMatchObject({ status: 401, code: 'unauthorized' });
    expect(refresh).toHaveBeenCalledTimes(1);
    expect(fetchMock).toHaveBeenCalledTimes(2);
  });

  it('a failed refresh ends the session (back to the login page) and does not retry', async () => {
    const { http, refresh, fetchMock, expired } = setup([problem(401, 'unauthorized')], new Error('401'));
    await expect(http.request('GET', '/x')).rejects.toBeInstanceOf(ApiError);
    expect(refresh).toHaveBeenCalledTimes(1);
    expect(expired).toHaveBeenCalledTimes(1);
    expect(fetchMock).toHaveBeenCalledTimes(1);
  });

  it('parallel calls that all see 401 share one refresh', async () => {
    let release: (ok: boolean) => void = () => undefined;
    const refresh = vi.fn(() => new Promise<boolean>((r) => (release = r)));
    const session = new SessionKeeper(refresh, () => undefined);
    let calls = 0;
    const fetchMock = vi.fn(async () => (++calls <= 3 ? problem(401, 'unauthorized') : json({ n: calls })));
    const http = new HttpClient('http://a.test', 'auth', session, fetchMock as unknown as typeof fetch);
    const all = Promise.all([http.request('GET', '/1'), http.request('GET', '/2'), http.request('GET', '/3')]);
    await vi.waitFor(() => expect(refresh).toHaveBeenCalled());
    await new Promise((r) => setTimeout(r, 0));
    release(true);
    await expect(all).resolves.toHaveLength(3);
    expect(refresh).toHaveBeenCalledTimes(1);
  });

  it('does not refresh for calls outside the session (login, verify...)', async () => {
    const { http, refresh } = setup([problem(401, 'invalid_credentials')]);
    await expect(http.request('POST', '/api/auth/login', { body: {}, session: false })).rejects.toMatchObject({ code: 'invalid_credentials' });
    expect(refresh).not.toHaveBeenCalled();
  });

  it('keeps the problem document: detail and errors by field', async () => {
    const { http } = setup([problem(422, 'validation_failed', { errors: { priority: ['must be between -1000 and 1000'], 'data.ms': 'too long' } })]);
    const error = (await http.request('POST', '/x', { body: {} }).catch((e: unknown) => e)) as ApiError;
    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(422);
    expect(error.detail).toBe('detail of validation_failed');
    expect(error.forField('priority')).toEqual(['must be between -1000 and 1000']);
    expect(error.forField('data.ms')).toEqual(['too long']);
    expect(error.forField('type')).toEqual([]);
  });

  it('turns a non-problem error and a network failure into readable errors', async () => {
    const { http } = setup([new Response('<html>bad gateway</html>', { status: 502 }), new TypeError('Failed to fetch')]);
    await expect(http.request('GET', '/x')).rejects.toMatchObject({ status: 502, code: 'server_error' });
    await expect(http.request('GET', '/x')).rejects.toMatchObject({ status: 0, code: 'network_error', detail: expect.stringContaining('job service') });
  });

  it('keeps the request id of a server failure for the message', async () => {
    const { http } = setup([problem(503, 'unavailable', { request_id: 'req-123' })]);
    const error = (await http.request('GET', '/x').catch((e: unknown) => e)) as ApiError;
    expect(error.requestId).toBe('req-123');
    expect(messageOf(error)).toBe('detail of unavailable (request id req-123)');
  });

  it('answers undefined for 204', async () => {
    const { http } = setup([new Response(null, { status: 204 })]);
    await expect(http.request('POST', '/api/auth/logout', { session: false })).resolves.toBeUndefined();
  });
});
