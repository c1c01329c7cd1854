import { useCallback, useEffect, useId, useState } from 'react';
import { JOB_TYPES, type JobType } from '../api/jobs';
import { messageOf } from '../api/problem';
import { useLiveEvent } from '../live/hooks';
import { useServices } from '../services';

/**
 * How the paused types read: the service lists every paused type, so "everything paused" is
 * every known type in the list.
 */
export function describePaused(paused: readonly JobType[]): string {
  if (paused.length === 0) return 'Every job type is running.';
  if (JOB_TYPES.every((type) => paused.includes(type))) return 'Every job type is paused.';
  return `Paused: ${[...paused].sort().join(', ')}.`;
}

/**
 * Pause and resume per job type or for everything (admins only, API §6). Queued jobs of a
 * paused type stay queued and running ones finish. The state comes from the stats and follows
 * the `queuePaused` / `queueResumed` events of the admin room, so every admin's page agrees.
 */
export function QueueControls({ paused: initial }: { paused: readonly JobType[] | null }) {
  const { jobs } = useServices();
  const id = useId();
  const [paused, setPaused] = useState<readonly JobType[] | null>(initial);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => setPaused(initial), [initial]);
  useLiveEvent('queuePaused', (data) => setPaused(data.paused));
  useLiveEvent('queueResumed', (data) => setPaused(data.paused));

  const act = useCallback(
    async (action: 'pause' | 'resume', type?: JobType) => {
      setBusy(true);
      setError(null);
      try {
        const answer = action === 'pause' ? await jobs.pause(type) : await jobs.resume(type);
        setPaused(answer.paused);
      } catch (e) {
        setError(messageOf(e));
      } finally {
        setBusy(false);
      }
    },
    [jobs],
  );

  return (
    <section className="card queue-controls" aria-labelledby={`${id}-title`}>
      <header className="page-head">
        <h2 id={`${id}-title`}>Queue</h2>
        <div className="actions">
          <button type="button" className="button button--danger" disabled={busy} onClick={() => void act('pause')}>
            Pause all
          </button>
          <button type="button" className="button button--primary" disabled={busy} onClick={() => void act('resume')}>
            Resume all
          </button>
        </div>
      </header>
      {error && (
        <div className="alert alert--error" role="alert">
          {error}
        </div>
      )}
      {paused === null ? (
        <p className="muted">Loading…</p>
      ) : (
        <>
          <p data-field="paused" aria-live="polite">
            {describePaused(paused)}
          </p>
          <ul className="queue-types">
            {JOB_TYPES.map((type) => {
              const isPaused = paused.includes(type);
              return (
                <li key={type} data-job-type={type} data-paused={isPaused}>
                  <code>{type}</code> <span className={`badge badge--${isPaused ? 'paused' : 'running'}`}>{isPaused ? 'paused' : 'running'}</span>{' '}
                  <button
                    type="button"
                    className="button"
                    disabled={busy}
                    aria-label={`${isPaused ? 'Resume' : 'Pause'} ${type}`}
                    onClick={() => void act(isPaused ? 'resume' : 'pause', type)}
                  >
                    {isPaused ? 'Resume' : 'Pause'}
                  </button>
                </li>
              );
            })}
          </ul>
        </>
      )}
    </section>
  );
}
