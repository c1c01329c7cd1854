import type { ReactNode } from 'react';
import { Navigate, NavLink, Outlet, Route, Routes, useLocation } from 'react-router-dom';
import { AuthProvider, useAuth } from './auth/AuthContext';
import { LiveIndicator } from './components/LiveIndicator';
import { Account } from './pages/Account';
import { Admin } from './pages/Admin';
import { ForgotPassword } from './pages/ForgotPassword';
import { JobDetail } from './pages/JobDetail';
import { Jobs } from './pages/Jobs';
import { Login } from './pages/Login';
import { NewJob } from './pages/NewJob';
import { ResetPassword } from './pages/ResetPassword';
import { Rooms } from './pages/Rooms';
import { Schedules } from './pages/Schedules';
import { Signup } from './pages/Signup';
import { Verify } from './pages/Verify';
import { VerifyEmail } from './pages/VerifyEmail';

export function App() {
  return (
    <AuthProvider>
      <Routes>
        <Route element={<Layout />}>
          <Route path="/login" element={<Login />} />
          <Route path="/signup" element={<Signup />} />
          <Route path="/verify" element={<Verify />} />
          <Route path="/verify-email" element={<VerifyEmail />} />
          <Route path="/forgot-password" element={<ForgotPassword />} />
          <Route path="/reset-password" element={<ResetPassword />} />
          <Route element={<RequireUser />}>
            <Route path="/jobs" element={<Jobs />} />
            <Route path="/jobs/new" element={<NewJob />} />
            <Route path="/jobs/:id" element={<JobDetail />} />
            <Route path="/schedules" element={<Schedules />} />
            <Route path="/rooms" element={<Rooms />} />
            <Route path="/account" element={<Account />} />
            <Route
              path="/admin"
              element={
                <RequireAdmin>
                  <Admin />
                </RequireAdmin>
              }
            />
          </Route>
          <Route path="/" element={<Navigate to="/jobs" replace />} />
          <Route path="*" element={<NotFound />} />
        </Route>
      </Routes>
    </AuthProvider>
  );
}

function Layout() {
  const { user, logout } = useAuth();
  return (
    <div className="app">
      <header className="topbar">
        <NavLink to="/" className="brand">
          Task Vault
        </NavLink>
        {user && (
          <nav className="nav" aria-label="Main">
            <NavLink to="/jobs" end>
              Jobs
            </NavLink>
            <NavLink to="/jobs/new">New job</NavLink>
            <NavLink to="/schedules">Schedules</NavLink>
            <NavLink to="/rooms">Rooms</NavLink>
            {user.role === 'admin' && <NavLink to="/admin">Admin</NavLink>}
            <NavLink to="/account">Account</NavLink>
          </nav>
        )}
        {user && (
          <div className="topbar__end">
            <LiveIndicator />
            <span className="topbar__user" title={user.email}>
              {user.email}
            </span>
            <button type="button" className="button button--small" onClick={() => void logout()}>
              Sign out
            </button>
          </div>
        )}
      </header>
      <main className="main">
        <Outlet />
      </main>
    </div>
  );
}

/** Private pages: nothing renders until /me answered; signed-out visitors go to the login page. */
function RequireUser() {
  const { user, ended } = useAuth();
  const location = useLocation();
  if (user === undefined) return <p aria-busy="true">Loading…</p>;
  if (user === null) {
    if (ended) return <Navigate to="/login" replace />;
    const next = location.pathname + location.search;
    return <Navigate to={`/login?next=${encodeURIComponent(next)}`} replace />;
  }
  return <Outlet />;
}

function RequireAdmin({ children }: { children: ReactNode }) {
  const { user } = useAuth();
  if (user?.role !== 'admin') return <NotFound />;
  return <>{children}</>;
}

function NotFound() {
  return (
    <section className="card card--narrow">
      <h1>Page not found</h1>
      <p>
        <NavLink to="/jobs">Go to your jobs</NavLink>
      </p>
    </section>
  );
}
