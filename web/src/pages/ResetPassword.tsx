import { useState, type FormEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router-dom';
import { FormError } from '../components/Field';
import { PasswordField } from '../components/PasswordField';
import { useForm } from '../forms/useForm';
import { validateReset } from '../forms/validation';
import { useServices } from '../services';

/** The target of the reset email's link: `/reset-password?token=…`. */
export function ResetPassword() {
  const { auth } = useServices();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const form = useForm(['password', 'confirm']);

  async function onSubmit(event: FormEvent) {
    event.preventDefault();
    await form.submit(
      () => validateReset(password, confirm),
      async () => {
        await auth.resetPassword(token, { password });
        navigate('/login?reset=1', { replace: true });
      },
    );
  }

  if (!token) {
    return (
      <section className="card card--narrow">
        <h1>Choose a new password</h1>
        <div className="alert alert--error" role="alert">
          This link has no token. <Link to="/forgot-password">Ask for a new link</Link>.
        </div>
      </section>
    );
  }
  return (
    <section className="card card--narrow">
      <h1>Choose a new password</h1>
      <form onSubmit={onSubmit} noValidate>
        <FormError message={form.formError} />
        <PasswordField
          label="New password"
          errors={form.errorsFor('password')}
          hint="8 to 72 characters. Every session is signed out."
          value={password}
          onChange={setPassword}
        />
        <PasswordField
          label="Repeat the new password"
          errors={form.errorsFor('confirm')}
          value={confirm}
          onChange={setConfirm}
        />
        <button type="submit" className="button button--primary" disabled={form.busy}>
          Set the new password
        </button>
      </form>
      <p className="card__links">
        <Link to="/forgot-password">Ask for a new link</Link>
      </p>
    </section>
  );
}
