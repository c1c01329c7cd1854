import type { ReactNode } from 'react';
import { Field } from './Field';

interface PasswordFieldProps {
  label: string;
  value: string;
  onChange: (value: string) => void;
  errors?: string[];
  hint?: ReactNode;
  /** `current-password` where the user types the password they have, else a new one. */
  autoComplete?: 'current-password' | 'new-password';
}

/** A labelled password input: sign-in, sign-up, reset and change-password forms share it. */
export function PasswordField({ label, value, onChange, errors, hint, autoComplete = 'new-password' }: PasswordFieldProps) {
  return (
    <Field label={label} errors={errors} hint={hint}>
      {(p) => (
        <input {...p} type="password" autoComplete={autoComplete} value={value} onChange={(e) => onChange(e.target.value)} />
      )}
    </Field>
  );
}
