import { describe, expect, it } from 'vitest';
import type { Job } from '../api/jobs';
import { compareTimestamps, isNewer, mergeIntoList, mergePage, newest } from './merge';

let seq = 0;
function job(overrides: Partial<Job> = {}): Job {
  seq += 1;
  return {
    id: `00000000-0000-0000-0000-${String(seq).padStart(12, '0')}`,
    user_id: 'u1',
    type: 'sleep',
    data: {},
    priority: 0,
    status: 'pending',
    attempts: 0,
    max_attempts: 3,
    progress: 0,
    result: null,
    last_error: null,
    run_at: null,
    created_at: '2026-12-01T10:00:00.000Z',
    updated_at: '2026-12-01T10:00:00.000Z',
    started_at: null,
    finished_at: null,
    depends_on: [],
    ...overrides,
  };
}

describe('timestamps', () => {
  it('orders sub-millisecond digits and mixed precision', () => {
    expect(compareTimestamps('2026-12-01T10:00:00.123456Z', '2026-12-01T10:00:00.123455Z')).toBeGreaterThan(0);
    expect(compareTimestamps('2026-12-01T10:00:00.1Z', '2026-12-01T10:00:00.100000Z')).toBe(0);
    expect(compareTimestamps('2026-12-01T10:00:00Z', '2026-12-01T10:00:00.000001Z')).toBeLessThan(0);
    expect(compareTimestamps('2026-12-01T11:00:00+01:00', '2026-12-01T10:00:00.5Z')).toBeLessThan(0);
  });
});

describe('an older event never overwrites a newer state', () => {
  const running = job({ status: 'running', progress: 60, updated_at: '2026-12-01T10:00:02.000500Z' });
  const olderPending = { ...running, status: 'pending' as const, progress: 0, updated_at: '2026-12-01T10:00:01.999Z' };
  const completed = { ...running, status: 'completed' as const, progress: 100, updated_at: '2026-12-01T10:00:03Z' };

  it('keeps the newer state', () => {
    expect(isNewer(running, olderPending)).toBe(false);
    expect(newest(running, olderPending)).toBe(running);
    expect(newest(running, completed)).toBe(completed);
    expect(newest(null, olderPending)).toBe(olderPending);
  });

  it('at an equal timestamp, a final status is not undone and progress does not go back', () => {
    const sameTimeRunning = { ...completed, status: 'running' as const, progress: 50 };
    expect(isNewer(completed, sameTimeRunning)).toBe(false);
    expect(isNewer(running, { ...running, progress: 40 })).toBe(false);
    expect(isNewer(running, { ...running, progress: 70 })).toBe(true);
  });

  it('lets a retry (newer, pending again) replace a failed state', () => {
    const failed = { ...running, status: 'failed' as const, updated_at: '2026-12-01T10:00:05Z' };
    const retried = { ...failed, status: 'pending' as const, attempts: 0, updated_at: '2026-12-01T10:00:06Z' };
    expect(newest(failed, retried)).toBe(retried);
  });

  it('a page read that raced with events keeps the events’ newer states', () => {
    const known = new Map([[running.id, completed]]);
    expect(mergePage([running], known)).toEqual([completed]);
    expect(mergePage([completed], new Map([[running.id, running]]))).toEqual([completed]);
  });
});

describe('mergeIntoList', () => {
  const a = job({ created_at: '2026-12-01T10:00:01Z', updated_at: '2026-12-01T10:00:01Z' });
  const b = job({ created_at: '2026-12-01T10:00:02Z', updated_at: '2026-12-01T10:00:02Z' });
  const list = [b, a]; // newest first

  it('replaces a shown job with its newer state and ignores an older one', () => {
    const bDone = { ...b, status: 'completed' as const, updated_at: '2026-12-01T10:00:09Z' };
    const merged = mergeIntoList(list, bDone, {}, true);
    expect(merged[0]).toBe(bDone);
    expect(mergeIntoList(merged, b, {}, true)).toBe(merged);
  });

  it('adds a new job at the top of the first page only, newest first', () => {
    const c = job({ created_at: '2026-12-01T10:00:03Z', updated_at: '2026-12-01T10:00:03Z' });
    expect(mergeIntoList(list, c, {}, true).map((j) => j.id)).toEqual([c.id, b.id, a.id]);
    expect(mergeIntoList(list, c, {}, false)).toBe(list);
  });

  it('respects the filters: a job leaves a status-filtered list when its status changes', () => {
    const aRunning = { ...a, status: 'running' as const, updated_at: '2026-12-01T10:00:05Z' };
    expect(mergeIntoList(list, aRunning, { status: 'pending' }, true).map((j) => j.id)).toEqual([b.id]);
    const other = job({ type: 'hash', created_at: '2026-12-01T10:00:04Z' });
    expect(mergeIntoList(list, other, { type: 'sleep' }, true)).toBe(list);
    expect(mergeIntoList(list, { ...other, user_id: 'u2', type: 'sleep' }, { userId: 'u1' }, true)).toBe(list);
  });

  it('keeps a full page at its size', () => {
    const c = job({ created_at: '2026-12-01T10:00:03Z' });
    expect(mergeIntoList(list, c, {}, true, 2).map((j) => j.id)).toEqual([c.id, b.id]);
    const old = job({ created_at: '2026-12-01T09:00:00Z' });
    expect(mergeIntoList(list, old, {}, true, 2)).toBe(list);
  });
});
