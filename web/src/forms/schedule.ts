import type { CreateSchedule } from '../api/schedules';
import { buildSubmit, type FieldErrors, type JobDraft } from './validation';

/** What the new-schedule form holds. */
export interface ScheduleDraft {
  name: string;
  cron: string;
  /** IANA zone; empty means UTC. */
  timezone: string;
  job: JobDraft;
}

function add(errors: FieldErrors, field: string, message: string): void {
  (errors[field] ??= []).push(message);
}

/**
 * A rough check of a cron expression before the service's exact one: five fields, or six with
 * leading seconds (the project's extension), or an `@daily`-style alias.
 */
export function cronFieldCount(cron: string): number {
  return cron.trim().split(/\s+/).filter(Boolean).length;
}

/**
 * Checks a draft and builds the body of `POST /api/schedules`. The job part is checked as the
 * New job form checks a submit (without `run_at`: the schedule says when), and its errors are
 * keyed `job.<field>` as the service keys them.
 */
export function buildSchedule(draft: ScheduleDraft): { body?: CreateSchedule; errors: FieldErrors } {
  const errors: FieldErrors = {};
  const name = draft.name.trim();
  if (!name) add(errors, 'name', 'Give the schedule a name.');
  else if ([...name].length > 200) add(errors, 'name', 'Use at most 200 characters.');
  const cron = draft.cron.trim().replace(/\s+/g, ' ');
  const fields = cronFieldCount(cron);
  if (!cron) add(errors, 'cron', 'Enter a cron expression, like */5 * * * *.');
  else if (!cron.startsWith('@') && (fields < 5 || fields > 6))
    add(errors, 'cron', `Use five fields (minute hour day month weekday), or six with seconds first; this has ${fields}.`);
  const job = buildSubmit({ ...draft.job, runAt: '' });
  for (const [field, messages] of Object.entries(job.errors)) {
    for (const message of messages) add(errors, `job.${field}`, message);
  }
  if (Object.keys(errors).length > 0 || !job.body) return { errors };
  const { type, data, priority, max_attempts } = job.body;
  const body: CreateSchedule = { name, cron, job: { type, data, priority, max_attempts } };
  if (draft.timezone.trim()) body.timezone = draft.timezone.trim();
  return { body, errors };
}

/** The reader's own time zone (the form's default), or UTC when the browser does not say. */
export function browserTimeZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}
