import { useCallback, useEffect, useRef, useState } from 'react';
import type { JobStats } from '../api/jobs';
import { useServices } from '../services';
import { useJobEvents, useLiveEvent, useLiveRefresh } from './hooks';

/**
 * `GET /api/jobs/stats`, read again after job events (at most once a second: a burst of events
 * costs one read) and by the polling fallback while the socket is down.
 */
export function useStats(): JobStats | null {
  const { jobs } = useServices();
  const [stats, setStats] = useState<JobStats | null>(null);
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);

  const load = useCallback(() => {
    jobs.stats().then(setStats, () => undefined);
  }, [jobs]);

  useEffect(() => {
    load();
    return () => {
      if (pending.current) clearTimeout(pending.current);
    };
  }, [load]);
  useLiveRefresh(load);
  // Pauses change `paused` (admins in `admin:jobs` are told).
  useLiveEvent('queuePaused', load);
  useLiveEvent('queueResumed', load);
  useJobEvents(() => {
    if (pending.current) return;
    pending.current = setTimeout(() => {
      pending.current = null;
      load();
    }, 1000);
  });
  return stats;
}
