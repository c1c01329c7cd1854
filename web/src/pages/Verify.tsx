import { useState, type FormEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router-dom';
import { Field, FormError, Notice } from '../components/Field';
import { useForm } from '../forms/useForm';
import { validateEmail, validateOtp, type FieldErrors } from '../forms/validation';
import { useServices } from '../services';

const OTP_CODES = { invalid_otp: 'otp' };

/** Verification by the six-digit code, and resending the email. */
export function Verify() {
  const { auth } = useServices();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [email, setEmail] = useState(params.get('email') ?? '');
  const [otp, setOtp] = useState('');
  const [resent, setResent] = useState(false);
  const form = useForm(['email', 'otp'], OTP_CODES);
  const resend = useForm(['email']);

  async function onSubmit(event: FormEvent) {
    event.preventDefault();
    await form.submit(
      () => validateOtp(email, otp),
      async () => {
        await auth.verifyOtp({ email: email.trim(), otp: otp.trim() });
        navigate(`/login?verified=1&email=${encodeURIComponent(email.trim())}`, { replace: true });
      },
    );
  }

  async function onResend() {
    setResent(false);
    await resend.submit(
      () => {
        const errors: FieldErrors = {};
        validateEmail(errors, email);
        return errors;
      },
      async () => {
        await auth.resendVerification({ email: email.trim() });
        setResent(true);
      },
    );
  }

  return (
    <section className="card card--narrow">
      <h1>Verify your email</h1>
      {params.get('sent') && !resent && (
        <Notice>We sent a six-digit code and a link to your address. Enter the code, or open the link.</Notice>
      )}
      {resent && <Notice>A new email is on its way; earlier codes no longer work.</Notice>}
      <form onSubmit={onSubmit} noValidate>
        <FormError message={form.formError ?? resend.formError} />
        <Field label="Email" errors={[...form.errorsFor('email'), ...resend.errorsFor('email')]}>
          {(p) => (
            <input {...p} type="email" autoComplete="email" value={email} onChange={(e) => setEmail(e.target.value)} />
          )}
        </Field>
        <Field label="Verification code" errors={form.errorsFor('otp')} hint="Six digits, valid for 10 minutes.">
          {(p) => (
            <input
              {...p}
              inputMode="numeric"
              autoComplete="one-time-code"
              maxLength={6}
              value={otp}
              onChange={(e) => setOtp(e.target.value.replace(/\D/g, ''))}
            />
          )}
        </Field>
        <div className="actions">
          <button type="submit" className="button button--primary" disabled={form.busy}>
            {form.busy ? 'Verifying…' : 'Verify'}
          </button>
          <button type="button" className="button" onClick={onResend} disabled={resend.busy}>
            Send a new code
          </button>
        </div>
      </form>
      <p className="card__links">
        <Link to="/login">Back to sign in</Link>
      </p>
    </section>
  );
}
