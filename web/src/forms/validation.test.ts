import { describe, expect, it } from 'vitest';
import { buildSubmit, emptyDraft, validateChangePassword, validateOtp, validateSignup } from './validation';

describe('account forms', () => {
  it('signup: email format, 8..72 bytes, matching confirmation', () => {
    expect(validateSignup('ada@example.com', 'correct horse', 'correct horse')).toEqual({});
    const errors = validateSignup('ada', 'short', 'other');
    expect(Object.keys(errors).sort()).toEqual(['confirm', 'email', 'password']);
    // 72 bytes is the limit, counted in UTF-8 (an "é" is two bytes).
    expect(validateSignup('a@b.co', 'é'.repeat(36), 'é'.repeat(36))).toEqual({});
    expect(validateSignup('a@b.co', 'é'.repeat(37), 'é'.repeat(37)).password?.[0]).toMatch(/72 bytes/);
  });

  it('otp: six digits', () => {
    expect(validateOtp('a@b.co', '123456')).toEqual({});
    expect(validateOtp('a@b.co', '12345').otp).toBeDefined();
    expect(validateOtp('a@b.co', 'abcdef').otp).toBeDefined();
  });

  it('change password: names the same fields as the service', () => {
    expect(Object.keys(validateChangePassword('', 'short', 'x')).sort()).toEqual(['confirm', 'current_password', 'new_password']);
  });
});

describe('the submit form', () => {
  const now = new Date('2026-12-01T10:00:00Z');

  it('builds the body of each built-in type', () => {
    expect(buildSubmit({ ...emptyDraft('echo'), json: '{"a": 1}' }, now).body).toEqual({ type: 'echo', data: { a: 1 }, priority: 0, max_attempts: 3 });
    expect(buildSubmit({ ...emptyDraft('noop'), json: '' }, now).body?.data).toEqual({});
    expect(buildSubmit({ ...emptyDraft('sleep'), sleepMs: '2500' }, now).body?.data).toEqual({ ms: 2500 });
    expect(
      buildSubmit({ ...emptyDraft('send_email', 'me@example.com'), emailSubject: 'Hi', emailBody: 'Body' }, now).body?.data,
    ).toEqual({ to: 'me@example.com', subject: 'Hi', body: 'Body' });
    expect(buildSubmit({ ...emptyDraft('hash'), hashText: 'hello' }, now).body?.data).toEqual({ text: 'hello', algorithm: 'sha256' });
  });

  it('adds the failure switches and the schedule', () => {
    const { body } = buildSubmit({ ...emptyDraft('noop'), json: '', shouldFail: true, failTimes: '2', runAt: '2026-12-01T12:00' }, now);
    expect(body?.data).toEqual({ shouldFail: true, failTimes: 2 });
    expect(body?.run_at).toBe(new Date('2026-12-01T12:00').toISOString());
  });

  it('keys its errors like the service does', () => {
    const { body, errors } = buildSubmit(
      { ...emptyDraft('sleep'), sleepMs: '600001', priority: '1001', maxAttempts: '0', failTimes: '-1', runAt: '2020-01-01T00:00' },
      now,
    );
    expect(body).toBeUndefined();
    expect(Object.keys(errors).sort()).toEqual(['data.failTimes', 'data.ms', 'max_attempts', 'priority', 'run_at']);
    expect(buildSubmit({ ...emptyDraft('echo'), json: '[1]' }, now).errors.data?.[0]).toMatch(/JSON object/);
    expect(buildSubmit({ ...emptyDraft('echo'), json: '{' }, now).errors.data?.[0]).toMatch(/Not valid JSON/);
    expect(Object.keys(buildSubmit({ ...emptyDraft('send_email'), emailTo: 'x' }, now).errors).sort()).toEqual([
      'data.body',
      'data.subject',
      'data.to',
    ]);
    expect(buildSubmit({ ...emptyDraft('noop'), json: '', priority: '1.5' }, now).errors.priority?.[0]).toMatch(/whole number/);
  });
});
