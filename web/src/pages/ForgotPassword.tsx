import { useState, type FormEvent } from 'react';
import { Link } from 'react-router-dom';
import { Field, FormError, Notice } from '../components/Field';
import { useForm } from '../forms/useForm';
import { validateEmail, type FieldErrors } from '../forms/validation';
import { useServices } from '../services';

export function ForgotPassword() {
  const { auth } = useServices();
  const [email, setEmail] = useState('');
  const [sent, setSent] = useState(false);
  const form = useForm(['email']);

  async function onSubmit(event: FormEvent) {
    event.preventDefault();
    await form.submit(
      () => {
        const errors: FieldErrors = {};
        validateEmail(errors, email);
        return errors;
      },
      async () => {
        await auth.forgotPassword({ email: email.trim() });
        setSent(true);
      },
    );
  }

  return (
    <section className="card card--narrow">
      <h1>Forgot your password?</h1>
      {sent ? (
        <Notice>If an account uses {email.trim()}, a link to choose a new password is on its way. It works for 30 minutes.</Notice>
      ) : (
        <form onSubmit={onSubmit} noValidate>
          <FormError message={form.formError} />
          <Field label="Email" errors={form.errorsFor('email')}>
            {(p) => (
              <input {...p} type="email" autoComplete="email" value={email} onChange={(e) => setEmail(e.target.value)} />
            )}
          </Field>
          <button type="submit" className="button button--primary" disabled={form.busy}>
            Email me a link
          </button>
        </form>
      )}
      <p className="card__links">
        <Link to="/login">Back to sign in</Link>
      </p>
    </section>
  );
}
