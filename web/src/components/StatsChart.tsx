import { JOB_STATUSES, type JobStats } from '../api/jobs';
import { describePaused } from './QueueControls';

/** Counts by status and queue depth by priority, as two small bar charts. */
export function StatsChart({ stats, title }: { stats: JobStats | null; title: string }) {
  if (!stats) return <p className="muted">Loading statistics…</p>;
  const counts = JOB_STATUSES.map((status) => ({ label: status, value: stats.counts[status] ?? 0 }));
  const depth = Object.entries(stats.queue_depth)
    .map(([priority, value]) => ({ label: `priority ${priority}`, value, priority: Number(priority) }))
    .sort((a, b) => b.priority - a.priority);
  return (
    <section className="stats" aria-label={title}>
      <Bars title="Jobs by status" rows={counts} kind="status" />
      <Bars title="Waiting to run, by priority" rows={depth} kind="depth" empty="Nothing is waiting." />
      {stats.paused && stats.paused.length > 0 && (
        <p className="alert alert--info stats__paused" data-stat="paused">
          {describePaused(stats.paused)} Jobs of a paused type wait in the queue until an admin resumes it.
        </p>
      )}
    </section>
  );
}

function Bars({
  title,
  rows,
  kind,
  empty,
}: {
  title: string;
  rows: { label: string; value: number }[];
  kind: string;
  empty?: string;
}) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  return (
    <figure className="bars">
      <figcaption>{title}</figcaption>
      {rows.length === 0 && <p className="muted">{empty}</p>}
      <dl>
        {rows.map((row) => (
          <div className="bars__row" key={row.label} data-stat={row.label}>
            <dt>{row.label}</dt>
            <dd>
              <svg className="bars__svg" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true">
                <rect
                  className={`bars__bar bars__bar--${kind} bars__bar--${row.label}`}
                  x="0"
                  y="0"
                  height="10"
                  width={(row.value / max) * 100}
                />
              </svg>
              <span className="bars__value">{row.value}</span>
            </dd>
          </div>
        ))}
      </dl>
    </figure>
  );
}
