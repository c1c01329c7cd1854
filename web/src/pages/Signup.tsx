import { useState, type FormEvent } from 'react';
import { Link, useNavigate } from 'react-router-dom';
import { Field, FormError } from '../components/Field';
import { PasswordField } from '../components/PasswordField';
import { useForm } from '../forms/useForm';
import { validateSignup } from '../forms/validation';
import { useServices } from '../services';

export function Signup() {
  const { auth } = useServices();
  const navigate = useNavigate();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const form = useForm(['email', 'password', 'confirm']);

  async function onSubmit(event: FormEvent) {
    event.preventDefault();
    await form.submit(
      () => validateSignup(email, password, confirm),
      async () => {
        await auth.signup({ email: email.trim(), password });
        navigate(`/verify?email=${encodeURIComponent(email.trim())}&sent=1`);
      },
    );
  }

  return (
    <section className="card card--narrow">
      <h1>Create an account</h1>
      <form onSubmit={onSubmit} noValidate>
        <FormError message={form.formError} />
        <Field label="Email" errors={form.errorsFor('email')}>
          {(p) => (
            <input {...p} type="email" autoComplete="email" value={email} onChange={(e) => setEmail(e.target.value)} />
          )}
        </Field>
        <PasswordField
          label="Password"
          errors={form.errorsFor('password')}
          hint="8 to 72 characters."
          value={password}
          onChange={setPassword}
        />
        <PasswordField
          label="Repeat the password"
          errors={form.errorsFor('confirm')}
          value={confirm}
          onChange={setConfirm}
        />
        <button type="submit" className="button button--primary" disabled={form.busy}>
          {form.busy ? 'Creating…' : 'Create account'}
        </button>
      </form>
      <p className="card__links">
        Already have an account? <Link to="/login">Sign in</Link>
      </p>
    </section>
  );
}
