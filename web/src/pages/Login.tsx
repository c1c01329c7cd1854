import { useState, type FormEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router-dom';
import { ApiError } from '../api/problem';
import { useAuth } from '../auth/AuthContext';
import { Field, FormError, Notice } from '../components/Field';
import { PasswordField } from '../components/PasswordField';
import { useForm } from '../forms/useForm';
import { validateCredentials } from '../forms/validation';
import { useServices } from '../services';

export function Login() {
  const { auth } = useServices();
  const { setUser, notice, clearNotice } = useAuth();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [email, setEmail] = useState(params.get('email') ?? '');
  const [password, setPassword] = useState('');
  const [unverified, setUnverified] = useState(false);
  const form = useForm(['email', 'password']);

  async function onSubmit(event: FormEvent) {
    event.preventDefault();
    setUnverified(false);
    await form.submit(
      () => validateCredentials(email, password),
      async () => {
        try {
          const { user } = await auth.login({ email: email.trim(), password });
          clearNotice();
          setUser(user);
          const next = params.get('next');
          navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/jobs', { replace: true });
        } catch (error) {
          if (error instanceof ApiError && error.code === 'email_not_verified') setUnverified(true);
          throw error;
        }
      },
    );
  }

  return (
    <section className="card card--narrow">
      <h1>Sign in</h1>
      {notice && <Notice>{notice}</Notice>}
      {params.get('verified') && <Notice>Your email address is verified. Sign in to continue.</Notice>}
      {params.get('reset') && <Notice>Your password was changed. Sign in with the new one.</Notice>}
      <form onSubmit={onSubmit} noValidate>
        <FormError message={form.formError} />
        {unverified && (
          <p>
            <Link to={`/verify?email=${encodeURIComponent(email.trim())}`}>Verify your email address</Link> first.
          </p>
        )}
        <Field label="Email" errors={form.errorsFor('email')}>
          {(p) => (
            <input {...p} type="email" autoComplete="email" value={email} onChange={(e) => setEmail(e.target.value)} />
          )}
        </Field>
        <PasswordField
          label="Password"
          errors={form.errorsFor('password')}
          autoComplete="current-password"
          value={password}
          onChange={setPassword}
        />
        <button type="submit" className="button button--primary" disabled={form.busy}>
          {form.busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <p className="card__links">
        <Link to="/signup">Create an account</Link> · <Link to="/forgot-password">Forgot your password?</Link> ·{' '}
        <Link to="/verify">Enter a verification code</Link>
      </p>
    </section>
  );
}
