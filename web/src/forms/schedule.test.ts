import { describe, expect, it } from 'vitest';
import { buildSchedule, cronFieldCount } from './schedule';
import { emptyDraft } from './validation';

const base = { name: 'Nightly', cron: '30 2 * * *', timezone: 'Europe/Berlin', job: emptyDraft('echo') };

describe('buildSchedule', () => {
  it('builds the body the service expects', () => {
    expect(buildSchedule({ ...base, cron: '  30  2 * *   * ' }).body).toEqual({
      name: 'Nightly',
      cron: '30 2 * * *',
      timezone: 'Europe/Berlin',
      job: { type: 'echo', data: { hello: 'world' }, priority: 0, max_attempts: 3 },
    });
  });

  it('leaves the zone out when empty (the service then uses UTC)', () => {
    expect(buildSchedule({ ...base, timezone: ' ' }).body?.timezone).toBeUndefined();
  });

  it('accepts six fields (seconds first) and aliases', () => {
    expect(buildSchedule({ ...base, cron: '*/10 * * * * *' }).errors).toEqual({});
    expect(buildSchedule({ ...base, cron: '@daily' }).errors).toEqual({});
  });

  it('names the fields at fault, the job part as job.<field>', () => {
    const { body, errors } = buildSchedule({
      name: ' ',
      cron: '* * *',
      timezone: '',
      job: { ...emptyDraft('sleep'), sleepMs: '700000', priority: 'high' },
    });
    expect(body).toBeUndefined();
    expect(Object.keys(errors).sort()).toEqual(['cron', 'job.data.ms', 'job.priority', 'name']);
  });

  it('ignores a run-at time left in the job draft', () => {
    expect(buildSchedule({ ...base, job: { ...emptyDraft('noop'), runAt: '2000-01-01T00:00' } }).body?.job).toEqual({
      type: 'noop',
      data: { hello: 'world' },
      priority: 0,
      max_attempts: 3,
    });
  });
});

describe('cronFieldCount', () => {
  it('counts whitespace-separated fields', () => {
    expect(cronFieldCount(' 0  9 * * MON-FRI ')).toBe(5);
    expect(cronFieldCount('')).toBe(0);
  });
});
