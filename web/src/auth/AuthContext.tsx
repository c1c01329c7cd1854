import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { useNavigate } from 'react-router-dom';
import type { User } from '../api/auth';
import { ApiError } from '../api/problem';
import { useServices } from '../services';

interface AuthState {
  /** undefined while the first /me is on its way; null when signed out. */
  user: User | null | undefined;
  /** Why the user was sent to the login page (session expired), shown there once. */
  notice: string | null;
  /**
   * The session ended here (sign out, expiry) rather than never existed: private pages then
   * go to the login page without asking to come back to them afterwards.
   */
  ended: boolean;
  setUser(user: User | null): void;
  logout(): Promise<void>;
  clearNotice(): void;
}

const AuthContext = createContext<AuthState | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const { auth, live, onSessionExpired } = useServices();
  const navigate = useNavigate();
  const [user, setUserState] = useState<User | null | undefined>(undefined);
  const [notice, setNotice] = useState<string | null>(null);
  const signedIn = useRef(false);
  const [ended, setEnded] = useState(false);

  const setUser = useCallback(
    (next: User | null) => {
      if (signedIn.current && next === null) setEnded(true);
      if (next) setEnded(false);
      signedIn.current = next !== null;
      setUserState(next);
      if (next) live.start();
      else live.stop();
    },
    [live],
  );

  // Who is signed in (the cookies say; an expired access token is refreshed once).
  useEffect(() => {
    let cancelled = false;
    auth
      .me()
      .then(({ user: me }) => !cancelled && setUser(me))
      .catch(() => !cancelled && setUser(null));
    return () => {
      cancelled = true;
    };
  }, [auth, setUser]);

  // A refresh failed somewhere: the session is over.
  useEffect(
    () =>
      onSessionExpired(() => {
        // A visitor who was never signed in (the first /me) just sees the public pages.
        if (!signedIn.current) return;
        // Navigate first: with the user gone, the private page would redirect on its own.
        navigate('/login', { replace: true });
        setUser(null);
        setNotice('Your session has ended. Sign in again.');
      }),
    [onSessionExpired, navigate, setUser],
  );

  const logout = useCallback(async () => {
    try {
      await auth.logout();
    } catch (error) {
      // Signed out locally anyway; the server session expires on its own.
      if (!(error instanceof ApiError)) throw error;
    }
    navigate('/login', { replace: true });
    setUser(null);
  }, [auth, navigate, setUser]);

  const value = useMemo<AuthState>(
    () => ({ user, notice, ended, setUser, logout, clearNotice: () => setNotice(null) }),
    [user, notice, ended, setUser, logout],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthState {
  const state = useContext(AuthContext);
  if (!state) throw new Error('useAuth outside AuthProvider');
  return state;
}
