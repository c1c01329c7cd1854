import { renderToStaticMarkup } from 'react-dom/server';
import { MemoryRouter } from 'react-router-dom';
import { describe, expect, it } from 'vitest';
import type { Job, JobStatus } from '../api/jobs';
import { chainSummary, DependencyList, type ParentEntry } from './Dependencies';

const a = '0193a1b2-0000-7000-8000-00000000000a';
const b = '0193a1b2-0000-7000-8000-00000000000b';
function parent(id: string, status: JobStatus, type: Job['type'] = 'noop'): ParentEntry {
  const job: Job = {
    id,
    user_id: 'u1',
    type,
    data: {},
    priority: 0,
    status,
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
  };
  return { id, job };
}

describe('the dependency chain on a job page', () => {
  it('lists every parent with a link to its page and its status badge', () => {
    const html = renderToStaticMarkup(
      <MemoryRouter>
        <DependencyList status="waiting" parents={[parent(a, 'completed', 'echo'), parent(b, 'running')]} />
      </MemoryRouter>,
    );
    expect(html).toContain(`href="/jobs/${a}"`);
    expect(html).toContain(`href="/jobs/${b}"`);
    expect(html).toContain('badge--completed');
    expect(html).toContain('badge--running');
    expect(html).toContain('echo');
    expect(html).toContain('Waiting for its parents: 1 of 2 completed.');
  });

  it('names the parent that failed or was cancelled', () => {
    expect(chainSummary('cancelled', [parent(a, 'completed'), parent(b, 'failed')])).toBe(`Parent ${b} failed.`);
    expect(chainSummary('cancelled', [parent(b, 'cancelled')])).toBe(`Parent ${b} was cancelled.`);
    expect(chainSummary('completed', [parent(a, 'completed')])).toBe('1 of 1 parents completed.');
  });

  it('shows a parent it could not load', () => {
    const html = renderToStaticMarkup(
      <MemoryRouter>
        <DependencyList status="waiting" parents={[{ id: a, job: null, error: 'Not found' }]} />
      </MemoryRouter>,
    );
    expect(html).toContain('Not found');
    expect(html).toContain('data-parent-status="unknown"');
  });
});
