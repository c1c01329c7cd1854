import { POLL_INTERVAL_MS, useLiveMode } from '../live/hooks';

const TEXT = {
  live: 'Live',
  connecting: 'Connecting…',
  polling: `Offline · refreshing every ${POLL_INTERVAL_MS / 1000} s`,
} as const;

const TITLE = {
  live: 'Updates are pushed over a WebSocket as jobs change.',
  connecting: 'Opening the live connection.',
  polling: 'The live connection is down; the page reads the data again every few seconds and keeps trying to reconnect.',
} as const;

/** Shows whether updates are pushed (live) or polled (while the socket cannot connect). */
export function LiveIndicator() {
  const mode = useLiveMode();
  return (
    <span className={`live live--${mode}`} role="status" data-mode={mode} title={TITLE[mode]}>
      <span className="live__dot" aria-hidden="true" />
      {TEXT[mode]}
    </span>
  );
}
