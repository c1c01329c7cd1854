import { useRef, useState, type FormEvent } from 'react';
import { useNavigate } from 'react-router-dom';
import { JOB_TYPES, type JobType } from '../api/jobs';
import { useAuth } from '../auth/AuthContext';
import { Field, FormError } from '../components/Field';
import { useForm } from '../forms/useForm';
import { buildSubmit, emptyDraft, type JobDraft } from '../forms/validation';
import { useServices } from '../services';

const FIELDS = [
  'type',
  'priority',
  'max_attempts',
  'run_at',
  'data',
  'data.ms',
  'data.to',
  'data.subject',
  'data.body',
  'data.text',
  'data.algorithm',
  'data.failTimes',
  'data.shouldFail',
];

const DESCRIPTIONS: Record<JobType, string> = {
  noop: 'Completes at once.',
  echo: 'Its result is the data you give it.',
  sleep: 'Waits, reporting its progress as it goes.',
  send_email: 'Sends an email (to your own verified address, unless you are an admin).',
  hash: 'Hashes a text; the result is the hex digest.',
};

export function NewJob() {
  const { jobs } = useServices();
  const { user } = useAuth();
  const navigate = useNavigate();
  const [draft, setDraft] = useState<JobDraft>(() => emptyDraft('echo', user?.email ?? ''));
  const form = useForm(FIELDS);
  // One key per filled-in form: a double click or a retried request creates one job.
  const idempotencyKey = useRef(crypto.randomUUID());

  const set = <K extends keyof JobDraft>(key: K, value: JobDraft[K]) => {
    idempotencyKey.current = crypto.randomUUID();
    setDraft((d) => ({ ...d, [key]: value }));
  };

  async function onSubmit(event: FormEvent) {
    event.preventDefault();
    let body: ReturnType<typeof buildSubmit>['body'];
    await form.submit(
      () => {
        const built = buildSubmit(draft);
        body = built.body;
        return built.errors;
      },
      async () => {
        if (!body) return;
        const { job } = await jobs.submit(body, idempotencyKey.current);
        navigate(`/jobs/${job.id}`);
      },
    );
  }

  const text = (key: keyof JobDraft, label: string, field: string, props: Record<string, unknown> = {}, hint?: string) => (
    <Field label={label} errors={form.errorsFor(field)} hint={hint}>
      {(p) => <input {...p} {...props} value={draft[key] as string} onChange={(e) => set(key, e.target.value)} />}
    </Field>
  );

  return (
    <section className="card">
      <h1>New job</h1>
      <form onSubmit={onSubmit} noValidate className="job-form">
        <FormError message={form.formError} />
        <Field label="Type" errors={form.errorsFor('type')} hint={DESCRIPTIONS[draft.type]}>
          {(p) => (
            <select {...p} value={draft.type} onChange={(e) => set('type', e.target.value as JobType)}>
              {JOB_TYPES.map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
            </select>
          )}
        </Field>

        <fieldset>
          <legend>Data</legend>
          {(draft.type === 'echo' || draft.type === 'noop') && (
            <Field label="Data (JSON object)" errors={form.errorsFor('data')}>
              {(p) => (
                <textarea {...p} rows={6} spellCheck={false} value={draft.json} onChange={(e) => set('json', e.target.value)} />
              )}
            </Field>
          )}
          {draft.type === 'sleep' &&
            text('sleepMs', 'Duration (ms)', 'data.ms', { type: 'number', min: 0, max: 600000, step: 100 }, 'Up to 600000 (10 minutes).')}
          {draft.type === 'send_email' && (
            <>
              {text('emailTo', 'To', 'data.to', { type: 'email' })}
              {text('emailSubject', 'Subject', 'data.subject')}
              <Field label="Message" errors={form.errorsFor('data.body')}>
                {(p) => <textarea {...p} rows={4} value={draft.emailBody} onChange={(e) => set('emailBody', e.target.value)} />}
              </Field>
            </>
          )}
          {draft.type === 'hash' && (
            <>
              {text('hashText', 'Text', 'data.text')}
              <Field label="Algorithm" errors={form.errorsFor('data.algorithm')}>
                {(p) => (
                  <select {...p} value={draft.hashAlgorithm} onChange={(e) => set('hashAlgorithm', e.target.value)}>
                    <option value="sha256">sha256</option>
                  </select>
                )}
              </Field>
            </>
          )}
        </fieldset>

        <fieldset>
          <legend>Scheduling</legend>
          <div className="grid">
            {text('priority', 'Priority', 'priority', { type: 'number', min: -1000, max: 1000 }, '−1000 to 1000; higher runs first.')}
            {text('maxAttempts', 'Max attempts', 'max_attempts', { type: 'number', min: 1, max: 25 }, '1 to 25.')}
            {text('runAt', 'Run at', 'run_at', { type: 'datetime-local' }, 'Empty: as soon as possible. Your local time.')}
          </div>
        </fieldset>

        <fieldset>
          <legend>Failure testing</legend>
          <div className="grid">
            <div className="field field--check">
              <input
                id="should-fail"
                type="checkbox"
                checked={draft.shouldFail}
                onChange={(e) => set('shouldFail', e.target.checked)}
              />
              <label htmlFor="should-fail">Every attempt fails (shouldFail)</label>
            </div>
            {text('failTimes', 'Fail the first attempts (failTimes)', 'data.failTimes', { type: 'number', min: 0, max: 25 })}
          </div>
        </fieldset>

        <button type="submit" className="button button--primary" disabled={form.busy}>
          {form.busy ? 'Submitting…' : 'Submit job'}
        </button>
      </form>
    </section>
  );
}
