import { FINAL_STATUSES, type Job, type JobStatus, type JobType } from '../api/jobs';

/**
 * Orders two RFC 3339 timestamps (any number of fractional digits, any offset):
 * negative when `a` is earlier. Date.parse keeps only milliseconds, so the sub-millisecond
 * digits are compared separately.
 */
export function compareTimestamps(a: string, b: string): number {
  const [msA, fracA] = split(a);
  const [msB, fracB] = split(b);
  if (msA !== msB) return msA - msB;
  return fracA < fracB ? -1 : fracA > fracB ? 1 : 0;
}

function split(timestamp: string): [number, string] {
  const match = /\.(\d+)/.exec(timestamp);
  const digits = (match?.[1] ?? '').padEnd(9, '0');
  return [Date.parse(timestamp), digits.slice(3)];
}

/**
 * Whether `incoming` describes a state at least as new as `current` (same job). An older event
 * (events and responses can arrive out of order) never overwrites a newer state; at an equal
 * `updated_at`, a final status or a higher progress wins.
 */
export function isNewer(current: Job, incoming: Job): boolean {
  const order = compareTimestamps(incoming.updated_at, current.updated_at);
  if (order !== 0) return order > 0;
  if (FINAL_STATUSES.has(current.status) && !FINAL_STATUSES.has(incoming.status)) return false;
  return incoming.progress >= current.progress;
}

/** The newer of the two states of one job. */
export function newest(current: Job | null | undefined, incoming: Job): Job {
  return current && !isNewer(current, incoming) ? current : incoming;
}

export interface ListFilter {
  status?: JobStatus | '';
  type?: JobType | '';
  userId?: string;
}

export function matches(job: Job, filter: ListFilter): boolean {
  return (
    (!filter.status || job.status === filter.status) &&
    (!filter.type || job.type === filter.type) &&
    (!filter.userId || job.user_id === filter.userId)
  );
}

/** Newest first, as the service lists them. */
function byCreatedDesc(a: Job, b: Job): number {
  return compareTimestamps(b.created_at, a.created_at) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

/**
 * Applies one job update to a displayed list page. A job already shown is replaced only by a
 * newer state, and leaves the list when it no longer matches the filter; a job not shown is
 * added only to the first page (`isFirstPage`), where new jobs appear. Returns the same array
 * when nothing changed, so React skips the render.
 */
export function mergeIntoList(list: Job[], incoming: Job, filter: ListFilter, isFirstPage: boolean, limit = Infinity): Job[] {
  const index = list.findIndex((job) => job.id === incoming.id);
  if (index >= 0) {
    const current = list[index] as Job;
    if (!isNewer(current, incoming)) return list;
    if (!matches(incoming, filter)) return list.filter((job) => job.id !== incoming.id);
    const next = list.slice();
    next[index] = incoming;
    return next;
  }
  if (!isFirstPage || !matches(incoming, filter)) return list;
  // Only jobs newer than the oldest one shown belong on this page.
  const oldest = list[list.length - 1];
  if (oldest && list.length >= limit && byCreatedDesc(incoming, oldest) > 0) return list;
  const next = [incoming, ...list].sort(byCreatedDesc);
  return next.length > limit ? next.slice(0, limit) : next;
}

/**
 * Merges a freshly read page with what live events already told us: a job whose event is newer
 * than the read (the read raced with an update) keeps the event's state.
 */
export function mergePage(fetched: Job[], known: ReadonlyMap<string, Job>): Job[] {
  return fetched.map((job) => newest(job, known.get(job.id) ?? job));
}
