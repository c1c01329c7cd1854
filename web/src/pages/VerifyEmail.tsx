import { useEffect, useState } from 'react';
import { Link, useSearchParams } from 'react-router-dom';
import type { User } from '../api/auth';
import { messageOf } from '../api/problem';
import { useServices } from '../services';
import type { AuthApi } from '../api/auth';

// A link token is single-use: React may run an effect twice (StrictMode, remounts), so each
// token is sent once per page load and every caller shares that answer.
const attempts = new Map<string, Promise<{ user: User }>>();
function verifyOnce(auth: AuthApi, token: string) {
  let attempt = attempts.get(token);
  if (!attempt) {
    attempt = auth.verifyToken(token);
    attempts.set(token, attempt);
  }
  return attempt;
}

/** The target of the email's link: `/verify-email?token=…`. */
export function VerifyEmail() {
  const { auth } = useServices();
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const [state, setState] = useState<{ user?: User; error?: string }>({});

  useEffect(() => {
    if (!token) {
      setState({ error: 'This link has no token. Open the link from the email again, or enter the code instead.' });
      return;
    }
    let cancelled = false;
    verifyOnce(auth, token)
      .then(({ user }) => !cancelled && setState({ user }))
      .catch((error: unknown) => !cancelled && setState({ error: messageOf(error) }));
    return () => {
      cancelled = true;
    };
  }, [auth, token]);

  return (
    <section className="card card--narrow">
      <h1>Email verification</h1>
      {!state.user && !state.error && <p aria-busy="true">Verifying your address…</p>}
      {state.user && (
        <>
          <p role="status">
            <strong>{state.user.email}</strong> is verified.
          </p>
          <Link className="button button--primary" to={`/login?verified=1&email=${encodeURIComponent(state.user.email)}`}>
            Sign in
          </Link>
        </>
      )}
      {state.error && (
        <>
          <div className="alert alert--error" role="alert">
            {state.error}
          </div>
          <p>
            <Link to="/verify">Enter the code or get a new email</Link>
          </p>
        </>
      )}
    </section>
  );
}
