import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { JOB_TYPES, type JobType } from '../api/jobs';
import { messageOf } from '../api/problem';
import type { Schedule } from '../api/schedules';
import { useAuth } from '../auth/AuthContext';
import { Field, FormError } from '../components/Field';
import { Time } from '../components/JobBits';
import { browserTimeZone, buildSchedule, type ScheduleDraft } from '../forms/schedule';
import { useForm } from '../forms/useForm';
import { emptyDraft, type JobDraft } from '../forms/validation';
import { useServices } from '../services';

const FIELDS = [
  'name',
  'cron',
  'timezone',
  'job.type',
  'job.priority',
  'job.max_attempts',
  'job.data',
  'job.data.ms',
  'job.data.to',
  'job.data.subject',
  'job.data.body',
  'job.data.text',
];

/** Periodic jobs: the list (yours; an admin's: everyone's) and a form to add one. */
export function Schedules() {
  const { schedules } = useServices();
  const { user } = useAuth();
  const [items, setItems] = useState<Schedule[] | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [busyId, setBusyId] = useState<string | null>(null);

  const load = useCallback(() => {
    schedules
      .list({ limit: 100 })
      .then((page) => {
        setItems(page.items);
        setLoadError(null);
      })
      .catch((e: unknown) => setLoadError(messageOf(e)));
  }, [schedules]);
  useEffect(load, [load]);
  // Next and last runs move on their own: refresh now and then while the page is open.
  useEffect(() => {
    const timer = setInterval(load, 5000);
    return () => clearInterval(timer);
  }, [load]);

  async function act(schedule: Schedule, action: 'pause' | 'resume' | 'delete') {
    setBusyId(schedule.id);
    setActionError(null);
    try {
      if (action === 'delete') {
        await schedules.delete(schedule.id);
        setItems((current) => current?.filter((s) => s.id !== schedule.id) ?? null);
      } else {
        const { schedule: fresh } = await (action === 'pause' ? schedules.pause(schedule.id) : schedules.resume(schedule.id));
        setItems((current) => current?.map((s) => (s.id === fresh.id ? fresh : s)) ?? null);
      }
    } catch (e) {
      setActionError(messageOf(e));
    } finally {
      setBusyId(null);
    }
  }

  const admin = user?.role === 'admin';
  return (
    <>
      <section className="card">
        <header className="page-head">
          <h1>Schedules</h1>
        </header>
        <p className="muted">
          A schedule creates a job at each time its cron expression names, in its time zone.{' '}
          {admin ? 'As an admin you see every user’s schedules.' : ''}
        </p>
        {loadError && (
          <div className="alert alert--error" role="alert">
            {loadError}
          </div>
        )}
        {actionError && (
          <div className="alert alert--error" role="alert">
            {actionError}
          </div>
        )}
        {items === null && !loadError && <p aria-busy="true">Loading…</p>}
        {items !== null && items.length === 0 && <p className="muted">No schedules yet.</p>}
        {items !== null && items.length > 0 && (
          <div className="table-wrap">
            <table className="jobs-table" aria-label="Schedules">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">When</th>
                  <th scope="col">Job</th>
                  <th scope="col">Next run</th>
                  <th scope="col">Last run</th>
                  <th scope="col">State</th>
                  {admin && <th scope="col">Owner</th>}
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {items.map((s) => (
                  <tr key={s.id} data-schedule-id={s.id} data-paused={s.paused ? 'true' : 'false'}>
                    <td>{s.name}</td>
                    <td>
                      <code>{s.cron}</code> <span className="muted">{s.timezone}</span>
                    </td>
                    <td>{s.job.type}</td>
                    <td data-field="next_run_at">
                      <Time value={s.next_run_at} />
                    </td>
                    <td data-field="last_run_at">
                      <Time value={s.last_run_at} />
                    </td>
                    <td>
                      <span className={`badge ${s.paused ? 'badge--cancelled' : 'badge--running'}`}>
                        {s.paused ? 'paused' : 'active'}
                      </span>
                    </td>
                    {admin && (
                      <td>
                        <code title={s.user_id}>{s.user_id === user?.id ? 'you' : s.user_id.slice(0, 8)}</code>
                      </td>
                    )}
                    <td>
                      <div className="actions actions--inline">
                        <button
                          type="button"
                          className="button button--small"
                          disabled={busyId === s.id}
                          onClick={() => void act(s, s.paused ? 'resume' : 'pause')}
                          aria-label={`${s.paused ? 'Resume' : 'Pause'} ${s.name}`}
                        >
                          {s.paused ? 'Resume' : 'Pause'}
                        </button>
                        <button
                          type="button"
                          className="button button--small button--danger"
                          disabled={busyId === s.id}
                          onClick={() => void act(s, 'delete')}
                          aria-label={`Delete ${s.name}`}
                        >
                          Delete
                        </button>
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <NewSchedule onCreated={(s) => setItems((current) => [s, ...(current ?? [])])} />
    </>
  );
}

function NewSchedule({ onCreated }: { onCreated: (schedule: Schedule) => void }) {
  const { schedules } = useServices();
  const { user } = useAuth();
  const fresh = (): ScheduleDraft => ({
    name: '',
    cron: '*/5 * * * *',
    timezone: browserTimeZone(),
    job: { ...emptyDraft('echo', user?.email ?? ''), json: '{}' },
  });
  const [draft, setDraft] = useState<ScheduleDraft>(fresh);
  const form = useForm(FIELDS);

  const set = <K extends keyof ScheduleDraft>(key: K, value: ScheduleDraft[K]) => setDraft((d) => ({ ...d, [key]: value }));
  const setJob = <K extends keyof JobDraft>(key: K, value: JobDraft[K]) =>
    setDraft((d) => ({ ...d, job: { ...d.job, [key]: value } }));

  async function onSubmit(event: FormEvent) {
    event.preventDefault();
    let body: ReturnType<typeof buildSchedule>['body'];
    await form.submit(
      () => {
        const built = buildSchedule(draft);
        body = built.body;
        return built.errors;
      },
      async () => {
        if (!body) return;
        const { schedule } = await schedules.create(body);
        onCreated(schedule);
        setDraft(fresh());
      },
    );
  }

  const jobText = (key: keyof JobDraft, label: string, field: string, props: Record<string, unknown> = {}, hint?: string) => (
    <Field label={label} errors={form.errorsFor(field)} hint={hint}>
      {(p) => <input {...p} {...props} value={draft.job[key] as string} onChange={(e) => setJob(key, e.target.value)} />}
    </Field>
  );
  const type = draft.job.type;

  return (
    <section className="card">
      <h2>New schedule</h2>
      <form onSubmit={onSubmit} noValidate className="job-form" aria-label="New schedule">
        <FormError message={form.formError} />
        <Field label="Name" errors={form.errorsFor('name')}>
          {(p) => <input {...p} value={draft.name} onChange={(e) => set('name', e.target.value)} />}
        </Field>
        <div className="grid">
          <Field
            label="Cron expression"
            errors={form.errorsFor('cron')}
            hint="minute hour day-of-month month day-of-week, e.g. 0 9 * * MON-FRI; a sixth field in front counts seconds."
          >
            {(p) => <input {...p} spellCheck={false} value={draft.cron} onChange={(e) => set('cron', e.target.value)} />}
          </Field>
          <Field label="Time zone" errors={form.errorsFor('timezone')} hint="An IANA name such as Europe/Berlin; empty: UTC.">
            {(p) => <input {...p} spellCheck={false} value={draft.timezone} onChange={(e) => set('timezone', e.target.value)} />}
          </Field>
        </div>
        <fieldset>
          <legend>Job</legend>
          <Field label="Job type" errors={form.errorsFor('job.type')}>
            {(p) => (
              <select {...p} value={type} onChange={(e) => setJob('type', e.target.value as JobType)}>
                {JOB_TYPES.map((t) => (
                  <option key={t} value={t}>
                    {t}
                  </option>
                ))}
              </select>
            )}
          </Field>
          {(type === 'echo' || type === 'noop') && (
            <Field label="Job data (JSON object)" errors={form.errorsFor('job.data')}>
              {(p) => (
                <textarea {...p} rows={3} spellCheck={false} value={draft.job.json} onChange={(e) => setJob('json', e.target.value)} />
              )}
            </Field>
          )}
          {type === 'sleep' && jobText('sleepMs', 'Duration (ms)', 'job.data.ms', { type: 'number', min: 0, max: 600000 })}
          {type === 'hash' && jobText('hashText', 'Text to hash', 'job.data.text')}
          {type === 'send_email' && (
            <>
              {jobText('emailTo', 'To', 'job.data.to', { type: 'email' })}
              {jobText('emailSubject', 'Subject', 'job.data.subject')}
              {jobText('emailBody', 'Message', 'job.data.body')}
            </>
          )}
          <div className="grid">
            {jobText('priority', 'Priority', 'job.priority', { type: 'number', min: -1000, max: 1000 })}
            {jobText('maxAttempts', 'Max attempts', 'job.max_attempts', { type: 'number', min: 1, max: 25 })}
          </div>
        </fieldset>
        <button type="submit" className="button button--primary" disabled={form.busy}>
          {form.busy ? 'Creating…' : 'Create schedule'}
        </button>
      </form>
    </section>
  );
}
