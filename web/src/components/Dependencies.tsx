import { useCallback, useEffect, useState } from 'react';
import { Link } from 'react-router-dom';
import type { Job, JobStatus } from '../api/jobs';
import { messageOf } from '../api/problem';
import { useJobEvents, useLiveRefresh } from '../live/hooks';
import { newest } from '../live/merge';
import { useServices } from '../services';
import { StatusBadge } from './JobBits';

/** One parent as the dependency chain shows it: known (loaded) or not (deleted, or not loaded yet). */
export interface ParentEntry {
  id: string;
  job: Job | null;
  error?: string;
}

/** What the chain says about a job that waits: how many parents are done, and which one stops it. */
export function chainSummary(status: JobStatus, parents: readonly ParentEntry[]): string {
  const done = parents.filter((p) => p.job?.status === 'completed').length;
  const blocker = parents.find((p) => p.job?.status === 'failed' || p.job?.status === 'cancelled');
  if (blocker?.job) return `Parent ${blocker.id} ${blocker.job.status === 'failed' ? 'failed' : 'was cancelled'}.`;
  if (status === 'waiting') return `Waiting for its parents: ${done} of ${parents.length} completed.`;
  return `${done} of ${parents.length} parents completed.`;
}

/** The parents of a job, each with its status and a link to its page (presentational). */
export function DependencyList({ status, parents }: { status: JobStatus; parents: readonly ParentEntry[] }) {
  return (
    <section className="dependencies" aria-label="Depends on">
      <h2>Depends on</h2>
      <p className="muted" data-field="chain-summary">
        {chainSummary(status, parents)}
      </p>
      <ol className="dependencies__list">
        {parents.map((parent) => (
          <li key={parent.id} data-parent={parent.id} data-parent-status={parent.job?.status ?? 'unknown'}>
            <Link to={`/jobs/${parent.id}`}>
              {parent.job ? parent.job.type : 'job'} <code>{parent.id}</code>
            </Link>{' '}
            {parent.job ? (
              <StatusBadge status={parent.job.status} />
            ) : (
              <span className="muted">{parent.error ?? 'loading…'}</span>
            )}
          </li>
        ))}
      </ol>
    </section>
  );
}

/** The dependency chain of `job`: its parents, loaded and kept current by their events. */
export function Dependencies({ job }: { job: Job }) {
  const { jobs } = useServices();
  const ids = job.depends_on;
  const key = ids.join(',');
  const [parents, setParents] = useState<ParentEntry[]>(() => ids.map((id) => ({ id, job: null })));

  const load = useCallback(() => {
    const wanted = key ? key.split(',') : [];
    void Promise.all(
      wanted.map((id) =>
        jobs.get(id).then(
          ({ job: parent }): ParentEntry => ({ id, job: parent }),
          (e: unknown): ParentEntry => ({ id, job: null, error: messageOf(e) }),
        ),
      ),
    ).then((loaded) =>
      setParents((current) =>
        loaded.map((fresh) => {
          const known = current.find((p) => p.id === fresh.id)?.job;
          return known && fresh.job ? { id: fresh.id, job: newest(known, fresh.job) } : fresh;
        }),
      ),
    );
  }, [jobs, key]);

  useEffect(() => {
    setParents(key ? key.split(',').map((id) => ({ id, job: null })) : []);
    load();
  }, [load, key]);
  useLiveRefresh(load);
  useJobEvents((event) => {
    setParents((current) =>
      current.some((p) => p.id === event.id)
        ? current.map((p) => (p.id === event.id ? { id: p.id, job: newest(p.job, event) } : p))
        : current,
    );
  });

  if (ids.length === 0) return null;
  return <DependencyList status={job.status} parents={parents} />;
}
