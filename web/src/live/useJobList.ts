import { useCallback, useEffect, useRef, useState } from 'react';
import type { Job, JobPage } from '../api/jobs';
import { messageOf } from '../api/problem';
import { POLL_INTERVAL_MS, useJobEvents, useLiveRefresh } from './hooks';
import { mergeIntoList, mergePage, type ListFilter } from './merge';

export const PAGE_SIZE = 20;

export interface JobList {
  items: Job[];
  loading: boolean;
  error: string | null;
  hasNext: boolean;
  hasPrevious: boolean;
  next(): void;
  previous(): void;
  reload(): void;
}

/**
 * One page of a job list (newest first, cursor pagination), kept current by pushed events and,
 * while the socket is down, by polling.
 */
export function useJobList(fetchPage: (cursor: string | undefined) => Promise<JobPage>, filter: ListFilter): JobList {
  // cursors[i] is the cursor of page i+1; page 0 has none.
  const [cursors, setCursors] = useState<string[]>([]);
  const [page, setPage] = useState<{ items: Job[]; next: string | null }>({ items: [], next: null });
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  // Counts failed reads in a row: a failed read is tried again (also while live, when nothing
  // polls), e.g. a 403 while a just-granted role is still cached by the service.
  const [failures, setFailures] = useState(0);
  const seen = useRef(new Map<string, Job>());
  const generation = useRef(0);
  const cursor = cursors[cursors.length - 1];
  const filterKey = JSON.stringify(filter);

  // A new filter starts again at the first page.
  useEffect(() => setCursors([]), [filterKey]);

  const load = useCallback(() => {
    const mine = ++generation.current;
    fetchPage(cursor)
      .then((result) => {
        if (mine !== generation.current) return; // a newer read is under way
        setPage({ items: mergePage(result.items, seen.current), next: result.next_cursor ?? null });
        setError(null);
        setFailures(0);
      })
      .catch((e: unknown) => {
        if (mine !== generation.current) return;
        setError(messageOf(e));
        setFailures((n) => n + 1);
      })
      .finally(() => mine === generation.current && setLoading(false));
  }, [fetchPage, cursor]);

  useEffect(() => {
    setLoading(true);
    load();
  }, [load]);

  useLiveRefresh(load);
  useEffect(() => {
    if (failures === 0) return;
    const timer = setTimeout(load, POLL_INTERVAL_MS);
    return () => clearTimeout(timer);
  }, [failures, load]);

  const firstPage = cursors.length === 0;
  useJobEvents((job) => {
    seen.current.set(job.id, job);
    if (seen.current.size > 1000) seen.current.delete(seen.current.keys().next().value as string);
    setPage((current) => {
      const items = mergeIntoList(current.items, job, filter, firstPage, PAGE_SIZE);
      return items === current.items ? current : { ...current, items };
    });
  });

  return {
    items: page.items,
    loading,
    error,
    hasNext: page.next !== null,
    hasPrevious: cursors.length > 0,
    next: () => page.next && setCursors((c) => [...c, page.next as string]),
    previous: () => setCursors((c) => c.slice(0, -1)),
    reload: load,
  };
}
