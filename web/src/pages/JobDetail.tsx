import { useCallback, useEffect, useState } from 'react';
import { Link, useParams } from 'react-router-dom';
import { FINAL_STATUSES, type Job } from '../api/jobs';
import { messageOf } from '../api/problem';
import { useAuth } from '../auth/AuthContext';
import { Dependencies } from '../components/Dependencies';
import { ProgressBar, StatusBadge, Time } from '../components/JobBits';
import { JobLog } from '../components/JobLog';
import { useJobEvents, useLiveRefresh } from '../live/hooks';
import { newest } from '../live/merge';
import { useServices } from '../services';

export function JobDetail() {
  const { id = '' } = useParams();
  const { jobs, live } = useServices();
  const { user } = useAuth();
  const [job, setJob] = useState<Job | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const load = useCallback(() => {
    jobs
      .get(id)
      .then(({ job: fresh }) => {
        setJob((current) => (current?.id === fresh.id ? newest(current, fresh) : fresh));
        setLoadError(null);
      })
      .catch((e: unknown) => setLoadError(messageOf(e)));
  }, [jobs, id]);

  useEffect(() => {
    setJob(null);
    load();
  }, [load]);
  useLiveRefresh(load);
  // An owner gets their jobs' events anyway; an admin looking at someone else's job follows its room.
  const owner = job?.user_id;
  useEffect(() => {
    if (!owner || !user || user.role !== 'admin' || owner === user.id) return;
    const room = `job:${id}`;
    live.joinRoom(room);
    return () => {
      live.leaveRoom(room);
    };
  }, [live, id, owner, user]);
  useJobEvents((event) => {
    if (event.id === id) setJob((current) => newest(current, event));
  });

  async function act(action: 'cancel' | 'retry') {
    setBusy(true);
    setActionError(null);
    try {
      const { job: fresh } = await (action === 'cancel' ? jobs.cancel(id) : jobs.retry(id));
      setJob((current) => newest(current, fresh));
    } catch (e) {
      setActionError(messageOf(e));
    } finally {
      setBusy(false);
    }
  }

  if (loadError && !job) {
    return (
      <section className="card">
        <h1>Job</h1>
        <div className="alert alert--error" role="alert">
          {loadError}
        </div>
        <Link to="/jobs">Back to your jobs</Link>
      </section>
    );
  }
  if (!job) return <p aria-busy="true">Loading…</p>;

  const canCancel =
    job.status === 'waiting' || job.status === 'pending' || job.status === 'scheduled' || job.status === 'running';
  const canRetry = job.status === 'failed' || job.status === 'cancelled';
  return (
    <section className="card job-detail" data-status={job.status}>
      <header className="page-head">
        <h1>
          {job.type} <code className="muted">{job.id}</code>
        </h1>
        <StatusBadge status={job.status} />
      </header>
      <ProgressBar value={job.progress} label="Progress" />
      {actionError && (
        <div className="alert alert--error" role="alert">
          {actionError}
        </div>
      )}
      <div className="actions">
        {canCancel && (
          <button type="button" className="button button--danger" disabled={busy} onClick={() => void act('cancel')}>
            Cancel job
          </button>
        )}
        {canRetry && (
          <button type="button" className="button button--primary" disabled={busy} onClick={() => void act('retry')}>
            Retry job
          </button>
        )}
      </div>
      <dl className="facts">
        <dt>Status</dt>
        <dd data-field="status">{job.status}</dd>
        <dt>Attempts</dt>
        <dd data-field="attempts">
          {job.attempts} of {job.max_attempts}
        </dd>
        <dt>Priority</dt>
        <dd>{job.priority}</dd>
        <dt>Last error</dt>
        <dd data-field="last_error">{job.last_error ?? <span className="muted">none</span>}</dd>
        <dt>Created</dt>
        <dd>
          <Time value={job.created_at} />
        </dd>
        <dt>Run at</dt>
        <dd>
          <Time value={job.run_at} />
        </dd>
        <dt>Started</dt>
        <dd>
          <Time value={job.started_at} />
        </dd>
        <dt>Finished</dt>
        <dd>
          <Time value={job.finished_at} />
        </dd>
        <dt>Updated</dt>
        <dd>
          <Time value={job.updated_at} />
        </dd>
        {job.schedule_id && (
          <>
            <dt>Schedule</dt>
            <dd data-field="schedule_id">
              <Link to="/schedules">
                <code>{job.schedule_id}</code>
              </Link>
            </dd>
          </>
        )}
      </dl>
      <Dependencies job={job} />
      <div className="grid">
        <div>
          <h2>Data</h2>
          <pre className="json">{JSON.stringify(job.data, null, 2)}</pre>
        </div>
        <div>
          <h2>Result</h2>
          <pre className="json" data-field="result">
            {job.result == null ? (FINAL_STATUSES.has(job.status) ? 'none' : 'not yet') : JSON.stringify(job.result, null, 2)}
          </pre>
        </div>
      </div>
      <JobLog id={job.id} revision={`${job.status}/${job.attempts}`} />
      <Link to="/jobs">← All your jobs</Link>
    </section>
  );
}
