import type { JobType, SubmitJob } from '../api/jobs';

/** Field name → messages; the same shape as a problem document's `errors`. */
export type FieldErrors = Record<string, string[]>;

function add(errors: FieldErrors, field: string, message: string): void {
  (errors[field] ??= []).push(message);
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export function validateEmail(errors: FieldErrors, email: string, field = 'email'): void {
  if (!email.trim()) add(errors, field, 'Enter your email address.');
  else if (!EMAIL.test(email.trim())) add(errors, field, 'Enter a valid email address, like ada@example.com.');
}

/** Passwords are 8 to 72 bytes (bcrypt's limit), counted in UTF-8 as the service does. */
export function validateNewPassword(errors: FieldErrors, password: string, field = 'password'): void {
  const bytes = new TextEncoder().encode(password).length;
  if (bytes < 8) add(errors, field, 'Use at least 8 characters.');
  else if (bytes > 72) add(errors, field, 'Use at most 72 bytes (fewer characters if you use accents or emoji).');
}

export function validateCredentials(email: string, password: string): FieldErrors {
  const errors: FieldErrors = {};
  validateEmail(errors, email);
  if (!password) add(errors, 'password', 'Enter your password.');
  return errors;
}

export function validateSignup(email: string, password: string, confirm: string): FieldErrors {
  const errors: FieldErrors = {};
  validateEmail(errors, email);
  validateNewPassword(errors, password);
  if (password !== confirm) add(errors, 'confirm', 'The two passwords differ.');
  return errors;
}

export function validateOtp(email: string, otp: string): FieldErrors {
  const errors: FieldErrors = {};
  validateEmail(errors, email);
  if (!/^\d{6}$/.test(otp.trim())) add(errors, 'otp', 'Enter the six digits from the email.');
  return errors;
}

export function validateReset(password: string, confirm: string): FieldErrors {
  const errors: FieldErrors = {};
  validateNewPassword(errors, password);
  if (password !== confirm) add(errors, 'confirm', 'The two passwords differ.');
  return errors;
}

export function validateChangePassword(current: string, next: string, confirm: string): FieldErrors {
  const errors: FieldErrors = {};
  if (!current) add(errors, 'current_password', 'Enter your current password.');
  validateNewPassword(errors, next, 'new_password');
  if (next !== confirm) add(errors, 'confirm', 'The two passwords differ.');
  return errors;
}

/** What the submit form holds: strings, as inputs give them. */
export interface JobDraft {
  type: JobType;
  priority: string;
  maxAttempts: string;
  /** `datetime-local` value (local time) or empty. */
  runAt: string;
  shouldFail: boolean;
  failTimes: string;
  /** echo / noop: free JSON object. */
  json: string;
  sleepMs: string;
  emailTo: string;
  emailSubject: string;
  emailBody: string;
  hashText: string;
  hashAlgorithm: string;
}

export function emptyDraft(type: JobType = 'echo', email = ''): JobDraft {
  return {
    type,
    priority: '0',
    maxAttempts: '3',
    runAt: '',
    shouldFail: false,
    failTimes: '',
    json: '{\n  "hello": "world"\n}',
    sleepMs: '3000',
    emailTo: email,
    emailSubject: '',
    emailBody: '',
    hashText: '',
    hashAlgorithm: 'sha256',
  };
}

function integer(
  errors: FieldErrors,
  field: string,
  raw: string,
  min: number,
  max: number,
  label: string,
): number | undefined {
  const text = raw.trim();
  if (text === '') return undefined;
  if (!/^-?\d+$/.test(text)) {
    add(errors, field, `${label} must be a whole number.`);
    return undefined;
  }
  const value = Number(text);
  if (value < min || value > max) add(errors, field, `${label} must be between ${min} and ${max}.`);
  return value;
}

/**
 * Checks a draft and builds the submit body. Field names match the service's `errors` keys
 * (`priority`, `max_attempts`, `run_at`, `data.ms`...), so client and server messages land on
 * the same inputs.
 */
export function buildSubmit(draft: JobDraft, now: Date = new Date()): { body?: SubmitJob; errors: FieldErrors } {
  const errors: FieldErrors = {};
  const priority = integer(errors, 'priority', draft.priority, -1000, 1000, 'Priority');
  const maxAttempts = integer(errors, 'max_attempts', draft.maxAttempts, 1, 25, 'Max attempts');
  let runAt: string | undefined;
  if (draft.runAt.trim()) {
    const when = new Date(draft.runAt);
    if (Number.isNaN(when.getTime())) add(errors, 'run_at', 'Enter a valid date and time.');
    else if (when.getTime() < now.getTime() - 60_000) add(errors, 'run_at', 'Pick a time in the future (or leave it empty to run now).');
    else runAt = when.toISOString();
  }

  let data: Record<string, unknown> = {};
  switch (draft.type) {
    case 'noop':
    case 'echo': {
      const text = draft.json.trim();
      if (text) {
        try {
          const parsed: unknown = JSON.parse(text);
          if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) add(errors, 'data', 'Data must be a JSON object, like {"key": "value"}.');
          else data = parsed as Record<string, unknown>;
        } catch (e) {
          add(errors, 'data', `Not valid JSON: ${(e as Error).message}`);
        }
      }
      break;
    }
    case 'sleep': {
      const ms = integer(errors, 'data.ms', draft.sleepMs, 0, 600_000, 'Duration');
      if (draft.sleepMs.trim() === '') add(errors, 'data.ms', 'Enter how long to sleep, in milliseconds.');
      data = { ms: ms ?? 0 };
      break;
    }
    case 'send_email':
      validateEmail(errors, draft.emailTo, 'data.to');
      if (!draft.emailSubject.trim()) add(errors, 'data.subject', 'Enter a subject.');
      if (!draft.emailBody.trim()) add(errors, 'data.body', 'Enter the message.');
      data = { to: draft.emailTo.trim(), subject: draft.emailSubject, body: draft.emailBody };
      break;
    case 'hash':
      if (!draft.hashText) add(errors, 'data.text', 'Enter the text to hash.');
      data = { text: draft.hashText, algorithm: draft.hashAlgorithm };
      break;
  }
  if (draft.shouldFail) data.shouldFail = true;
  const failTimes = integer(errors, 'data.failTimes', draft.failTimes, 0, 25, 'Fail times');
  if (failTimes !== undefined && failTimes > 0) data.failTimes = failTimes;

  if (Object.keys(errors).length > 0) return { errors };
  const body: SubmitJob = { type: draft.type, data };
  if (priority !== undefined) body.priority = priority;
  if (maxAttempts !== undefined) body.max_attempts = maxAttempts;
  if (runAt) body.run_at = runAt;
  return { body, errors };
}
