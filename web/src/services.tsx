import { createContext, useContext, type ReactNode } from 'react';
import { AuthApi } from './api/auth';
import { HttpClient, SessionKeeper } from './api/http';
import { JobsApi } from './api/jobs';
import { SchedulesApi } from './api/schedules';
import type { AppConfig } from './config';
import { LiveClient, socketUrl } from './live/client';

/** Everything that talks to the services, created once per page load from config.json. */
export interface Services {
  config: AppConfig;
  auth: AuthApi;
  jobs: JobsApi;
  schedules: SchedulesApi;
  live: LiveClient;
  session: SessionKeeper;
  /** Listeners told when the session is over (a refresh failed). */
  onSessionExpired(listener: () => void): () => void;
}

export function createServices(config: AppConfig): Services {
  const expiredListeners = new Set<() => void>();
  // The refresh call itself must not go through the keeper (a 401 there means "log in again").
  const refreshHttp = new HttpClient(config.authUrl, 'auth', null);
  const refreshApi = new AuthApi(refreshHttp);
  const session = new SessionKeeper(
    async () => {
      await refreshApi.refresh();
      return true;
    },
    () => {
      for (const listener of expiredListeners) listener();
    },
  );
  const auth = new AuthApi(new HttpClient(config.authUrl, 'auth', session));
  const jobsHttp = new HttpClient(config.jobsUrl, 'job', session);
  const jobs = new JobsApi(jobsHttp);
  const schedules = new SchedulesApi(jobsHttp);
  const live = new LiveClient(socketUrl(config.jobsUrl), { renewSession: () => session.refresh() });
  return {
    config,
    auth,
    jobs,
    schedules,
    live,
    session,
    onSessionExpired(listener) {
      expiredListeners.add(listener);
      return () => expiredListeners.delete(listener);
    },
  };
}

const ServicesContext = createContext<Services | null>(null);

export function ServicesProvider({ services, children }: { services: Services; children: ReactNode }) {
  return <ServicesContext.Provider value={services}>{children}</ServicesContext.Provider>;
}

export function useServices(): Services {
  const services = useContext(ServicesContext);
  if (!services) throw new Error('useServices outside ServicesProvider');
  return services;
}
