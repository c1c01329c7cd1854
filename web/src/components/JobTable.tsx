import { Link } from 'react-router-dom';
import type { Job } from '../api/jobs';
import type { JobList } from '../live/useJobList';
import { ProgressBar, StatusBadge, Time } from './JobBits';

export function JobTable({ list, showUser = false }: { list: JobList; showUser?: boolean }) {
  return (
    <div className="job-list">
      {list.error && (
        <div className="alert alert--error" role="alert">
          {list.error}
        </div>
      )}
      <div className="table-wrap">
        <table className="jobs-table" aria-busy={list.loading}>
          <thead>
            <tr>
              <th scope="col">Job</th>
              <th scope="col">Status</th>
              <th scope="col">Progress</th>
              <th scope="col">Priority</th>
              <th scope="col">Attempts</th>
              {showUser && <th scope="col">User</th>}
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {list.items.map((job) => (
              <JobRow key={job.id} job={job} showUser={showUser} />
            ))}
            {!list.loading && list.items.length === 0 && (
              <tr>
                <td colSpan={showUser ? 7 : 6} className="muted">
                  No jobs here yet.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <nav className="pager" aria-label="Pages">
        <button type="button" className="button" onClick={list.previous} disabled={!list.hasPrevious}>
          ← Newer
        </button>
        <button type="button" className="button" onClick={list.next} disabled={!list.hasNext}>
          Older →
        </button>
      </nav>
    </div>
  );
}

function JobRow({ job, showUser }: { job: Job; showUser: boolean }) {
  return (
    <tr data-job-id={job.id} data-status={job.status}>
      <td data-label="Job">
        <Link to={`/jobs/${job.id}`}>
          <strong>{job.type}</strong> <code className="muted">{job.id.slice(-8)}</code>
        </Link>
      </td>
      <td data-label="Status">
        <StatusBadge status={job.status} />
      </td>
      <td data-label="Progress">
        <ProgressBar value={job.progress} label={`Progress of ${job.type} job ${job.id.slice(-8)}`} />
      </td>
      <td data-label="Priority">{job.priority}</td>
      <td data-label="Attempts">
        {job.attempts}/{job.max_attempts}
      </td>
      {showUser && (
        <td data-label="User">
          <code>{job.user_id.slice(-8)}</code>
        </td>
      )}
      <td data-label="Created">
        <Time value={job.created_at} />
      </td>
    </tr>
  );
}
