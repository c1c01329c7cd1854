import { useCallback, useState } from 'react';
import { ApiError, messageOf } from '../api/problem';
import type { FieldErrors } from './validation';

export interface FormState {
  busy: boolean;
  /** Messages for one field: the form's own checks, or the problem document's `errors`. */
  errorsFor(field: string): string[];
  /** The problem's message when it names no field shown on the form (or is not a validation error). */
  formError: string | null;
  /** Runs `check` first (errors stop the submit), then `action`; any thrown problem is kept. */
  submit(check: () => FieldErrors, action: () => Promise<void>): Promise<void>;
  reset(): void;
}

/**
 * Ties a form's client-side checks and the services' problem documents to its fields.
 * `fields` lists the field names the form shows, so that a problem naming another field still
 * gets displayed (at the top) rather than lost.
 */
export function useForm(fields: readonly string[], codeFields: Record<string, string> = {}): FormState {
  const [busy, setBusy] = useState(false);
  const [clientErrors, setClientErrors] = useState<FieldErrors>({});
  const [problem, setProblem] = useState<unknown>(null);

  const errorsFor = useCallback(
    (field: string) => {
      const own = clientErrors[field] ?? [];
      let server: string[] = [];
      if (problem instanceof ApiError) {
        server = problem.forField(field);
        // A problem without `errors` whose code belongs to one field (e.g. a wrong code).
        if (codeFields[problem.code] === field && Object.keys(problem.fieldErrors).length === 0) {
          server = [problem.detail || problem.title];
        }
      }
      return [...own, ...server];
    },
    [clientErrors, problem, codeFields],
  );

  let formError: string | null = null;
  if (problem) {
    if (problem instanceof ApiError && codeFields[problem.code] && fields.includes(codeFields[problem.code] as string)) {
      formError = null;
    } else if (problem instanceof ApiError) {
      const unshown = Object.entries(problem.fieldErrors).filter(([field]) => !fields.includes(field));
      const shown = Object.keys(problem.fieldErrors).length - unshown.length;
      if (shown === 0 || unshown.length > 0) {
        const extra = unshown.map(([field, messages]) => `${field}: ${messages.join(' ')}`).join(' ');
        formError = [messageOf(problem), extra].filter(Boolean).join(' ');
      }
    } else {
      formError = messageOf(problem);
    }
  }

  const submit = useCallback(async (check: () => FieldErrors, action: () => Promise<void>) => {
    const errors = check();
    setClientErrors(errors);
    setProblem(null);
    if (Object.keys(errors).length > 0) return;
    setBusy(true);
    try {
      await action();
    } catch (error) {
      setProblem(error);
    } finally {
      setBusy(false);
    }
  }, []);

  const reset = useCallback(() => {
    setClientErrors({});
    setProblem(null);
  }, []);

  return { busy, errorsFor, formError, submit, reset };
}
