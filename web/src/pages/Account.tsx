import { useState, type FormEvent } from 'react';
import { useAuth } from '../auth/AuthContext';
import { FormError, Notice } from '../components/Field';
import { PasswordField } from '../components/PasswordField';
import { useForm } from '../forms/useForm';
import { validateChangePassword } from '../forms/validation';
import { useServices } from '../services';

const CODES = { invalid_credentials: 'current_password' };

export function Account() {
  const { auth } = useServices();
  const { user, logout } = useAuth();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [confirm, setConfirm] = useState('');
  const [done, setDone] = useState(false);
  const form = useForm(['current_password', 'new_password', 'confirm'], CODES);

  async function onSubmit(event: FormEvent) {
    event.preventDefault();
    setDone(false);
    await form.submit(
      () => validateChangePassword(current, next, confirm),
      async () => {
        await auth.changePassword({ current_password: current, new_password: next });
        setCurrent('');
        setNext('');
        setConfirm('');
        setDone(true);
      },
    );
  }

  if (!user) return null;
  return (
    <div className="stack">
      <section className="card">
        <h1>Account</h1>
        <dl className="facts">
          <dt>Email</dt>
          <dd>{user.email}</dd>
          <dt>Role</dt>
          <dd>{user.role}</dd>
          <dt>Member since</dt>
          <dd>{new Date(user.created_at).toLocaleDateString()}</dd>
        </dl>
        <button type="button" className="button" onClick={() => void logout()}>
          Sign out
        </button>
      </section>
      <section className="card">
        <h2>Change password</h2>
        {done && <Notice>Password changed. Your other sessions were signed out.</Notice>}
        <form onSubmit={onSubmit} noValidate>
          <FormError message={form.formError} />
          <PasswordField
            label="Current password"
            errors={form.errorsFor('current_password')}
            autoComplete="current-password"
            value={current}
            onChange={setCurrent}
          />
          <PasswordField
            label="New password"
            errors={form.errorsFor('new_password')}
            hint="8 to 72 characters."
            value={next}
            onChange={setNext}
          />
          <PasswordField
            label="Repeat the new password"
            errors={form.errorsFor('confirm')}
            value={confirm}
            onChange={setConfirm}
          />
          <button type="submit" className="button button--primary" disabled={form.busy}>
            Change password
          </button>
        </form>
      </section>
    </div>
  );
}
