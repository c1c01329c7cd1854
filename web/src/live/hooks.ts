import { useEffect, useRef, useState } from 'react';
import type { Job } from '../api/jobs';
import { useServices } from '../services';
import type { LiveEvents, LiveMode } from './client';

/** How often data is read again while the socket is down. */
export const POLL_INTERVAL_MS = 3000;

export function useLiveMode(): LiveMode {
  const { live } = useServices();
  const [mode, setMode] = useState<LiveMode>(live.mode);
  useEffect(() => {
    setMode(live.mode);
    return live.onMode(setMode);
  }, [live]);
  return mode;
}

/**
 * Keeps data on screen current: `reload` runs again after every reconnect (events sent while
 * the socket was away are lost) and every POLL_INTERVAL_MS while there is no socket. Nothing
 * polls while the socket is live.
 */
export function useLiveRefresh(reload: () => void, pollMs = POLL_INTERVAL_MS): void {
  const { live } = useServices();
  const mode = useLiveMode();
  const latest = useRef(reload);
  latest.current = reload;

  useEffect(() => live.on('reconnected', () => latest.current()), [live]);

  useEffect(() => {
    if (mode === 'live') return;
    const timer = setInterval(() => latest.current(), pollMs);
    return () => clearInterval(timer);
  }, [mode, pollMs]);
}

/** Calls `handler` for every pushed `jobUpdated`. */
export function useJobEvents(handler: (job: Job) => void): void {
  useLiveEvent('jobUpdated', ({ job }) => handler(job));
}

export function useLiveEvent<E extends keyof LiveEvents>(event: E, handler: (data: LiveEvents[E]) => void): void {
  const { live } = useServices();
  const latest = useRef(handler);
  latest.current = handler;
  useEffect(() => live.on(event, (data) => latest.current(data)), [live, event]);
}
