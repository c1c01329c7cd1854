import { useCallback, useEffect, useId, useState } from 'react';
import { Link } from 'react-router-dom';
import type { Job } from '../api/jobs';
import { JobFilters, type Filters } from '../components/JobFilters';
import { StatusBadge, Time } from '../components/JobBits';
import { JobTable } from '../components/JobTable';
import { QueueControls } from '../components/QueueControls';
import { StatsChart } from '../components/StatsChart';
import { useJobEvents, useLiveEvent, useLiveMode } from '../live/hooks';
import { PAGE_SIZE, useJobList } from '../live/useJobList';
import { useStats } from '../live/useStats';
import { useServices } from '../services';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const FEED_SIZE = 30;
export const ADMIN_ROOM = 'admin:jobs';

/** Everyone's jobs (admins only): filters, the live `admin:jobs` feed, cancel/retry on the job page. */
export function Admin() {
  const { jobs, live } = useServices();
  const mode = useLiveMode();
  const id = useId();
  const [filters, setFilters] = useState<Filters>({ status: '', type: '' });
  const [userInput, setUserInput] = useState('');
  const userId = UUID.test(userInput.trim()) ? userInput.trim().toLowerCase() : '';
  const userInvalid = userInput.trim() !== '' && !userId;
  const [feed, setFeed] = useState<Job[]>([]);
  const [feedError, setFeedError] = useState<string | null>(null);

  const fetchPage = useCallback(
    (cursor: string | undefined) =>
      jobs.listAll({ ...filters, user_id: userId || undefined, limit: String(PAGE_SIZE), cursor }),
    [jobs, filters, userId],
  );
  const list = useJobList(fetchPage, { ...filters, userId: userId || undefined });
  const stats = useStats();

  // Everyone's job events arrive through the admin room, joined for as long as the page is open.
  useEffect(() => {
    live.joinRoom(ADMIN_ROOM);
    return () => {
      live.leaveRoom(ADMIN_ROOM);
    };
  }, [live]);
  useLiveEvent('error', (error) => setFeedError(`${error.code}: ${error.message}`));
  useJobEvents((job) => setFeed((current) => [job, ...current.filter((j) => j.id !== job.id)].slice(0, FEED_SIZE)));

  return (
    <div className="stack">
      <header className="page-head">
        <h1>All jobs</h1>
      </header>
      <section className="card">
        <StatsChart stats={stats} title="Statistics of every user's jobs" />
      </section>
      <QueueControls paused={stats?.paused ?? null} />
      <section className="card">
        <div className="filters">
          <JobFilters value={filters} onChange={setFilters} />
          <div className={`field field--inline${userInvalid ? ' field--invalid' : ''}`}>
            <label htmlFor={`${id}-user`}>User id</label>
            <input
              id={`${id}-user`}
              value={userInput}
              placeholder="any user"
              aria-invalid={userInvalid}
              aria-describedby={userInvalid ? `${id}-user-error` : undefined}
              onChange={(e) => setUserInput(e.target.value)}
            />
            {userInvalid && (
              <p className="field__error" id={`${id}-user-error`}>
                A user id is a UUID.
              </p>
            )}
          </div>
        </div>
        <JobTable list={list} showUser />
      </section>
      <section className="card" aria-labelledby={`${id}-feed`}>
        <h2 id={`${id}-feed`}>Live feed</h2>
        {mode !== 'live' && <p className="muted">The feed shows events pushed over the live connection; it is offline now.</p>}
        {feedError && (
          <div className="alert alert--error" role="alert">
            {feedError}
          </div>
        )}
        <ol className="feed" aria-live="polite">
          {feed.map((job) => (
            <li key={job.id} data-job-id={job.id}>
              <StatusBadge status={job.status} /> <Link to={`/jobs/${job.id}`}>{job.type}</Link>{' '}
              <code className="muted">{job.user_id.slice(-8)}</code> <Time value={job.updated_at} />
            </li>
          ))}
        </ol>
      </section>
    </div>
  );
}
