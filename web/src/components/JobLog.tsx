import { useEffect, useState } from 'react';
import type { JobLogLine } from '../api/jobs';
import { messageOf } from '../api/problem';
import { useServices } from '../services';

/**
 * A job's log (`GET /api/jobs/{id}/logs`), read when the page opens, whenever `revision`
 * changes (the page passes the job's status and attempt, so the log is read again when an
 * attempt starts or ends: a failure's reason appears without asking), and on request (the
 * Refresh button). Log lines are not pushed on the socket, and reading the log on every
 * progress update of a running job would put a page's polling back.
 */
export function JobLog({ id, revision }: { id: string; revision?: string }) {
  const { jobs } = useServices();
  const [lines, setLines] = useState<JobLogLine[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [version, setVersion] = useState(0);

  useEffect(() => {
    let current = true;
    jobs
      .logs(id)
      .then(({ lines: fresh }) => {
        if (!current) return;
        setLines(fresh);
        setError(null);
      })
      .catch((e: unknown) => {
        if (current) setError(messageOf(e));
      });
    return () => {
      current = false;
    };
  }, [jobs, id, version, revision]);

  return (
    <section className="job-log" aria-labelledby="job-log-title">
      <div className="page-head">
        <h2 id="job-log-title">Log</h2>
        <button type="button" className="button button--small" onClick={() => setVersion((v) => v + 1)}>
          Refresh log
        </button>
      </div>
      {error && (
        <div className="alert alert--error" role="alert">
          {error}
        </div>
      )}
      {lines === null && !error && <p aria-busy="true">Loading…</p>}
      {lines !== null && lines.length === 0 && <p className="muted">Nothing logged yet.</p>}
      {lines !== null && lines.length > 0 && (
        <ol className="log-lines" aria-label="Log lines">
          {lines.map((line, n) => (
            <li key={n} className={`log-line log-line--${line.level}`} data-level={line.level}>
              <time dateTime={line.at} title={line.at}>
                {new Date(line.at).toLocaleTimeString()}
              </time>
              <span className="log-line__attempt">#{line.attempt}</span>
              <span className="log-line__level">{line.level}</span>
              <span className="log-line__message">{line.message}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
