import type { Job, JobType } from '../api/jobs';

/** Which way the app is getting updates: pushed over the socket, or polled while it cannot connect. */
export type LiveMode = 'connecting' | 'live' | 'polling';

export interface RoomMessage {
  room: string;
  message: string;
  from: { id: string; email: string };
  sent_at: string;
}

export interface LiveError {
  code: string;
  message: string;
  /** The room the refused request named, when it named one. */
  room?: string;
}

/** Error codes after which a room is not held (and must not be joined again on reconnect). */
const ROOM_REFUSALS = new Set(['forbidden', 'invalid_room', 'not_found', 'too_many_rooms']);

/** Server → client events (API §5). */
export interface LiveEvents {
  jobUpdated: { job: Job };
  joined: { room: string };
  left: { room: string };
  receiveMessage: RoomMessage;
  error: LiveError;
  authenticated: { expires_at: string };
  /** To admins in `admin:jobs`: `types` were paused; `paused` is every paused type now. */
  queuePaused: { types: JobType[]; paused: JobType[] };
  /** To admins in `admin:jobs`: `types` were resumed; `paused` is every paused type now. */
  queueResumed: { types: JobType[]; paused: JobType[] };
  /** Not a server event: the socket (re)opened, so whatever is on screen should be read again. */
  reconnected: Record<string, never>;
}

type Listener<E extends keyof LiveEvents> = (data: LiveEvents[E]) => void;

/** The subset of the browser's WebSocket that the client uses (tests give a fake one). */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface LiveClientOptions {
  /** Opens a socket (default: the browser's WebSocket). */
  connect?: (url: string) => SocketLike;
  /**
   * Called when the server closed the socket because the session ended (a 4xxx close code:
   * token expired, logout, password change). Resolves true when a refresh restored the session.
   */
  renewSession?: () => Promise<boolean>;
  /** First reconnect delay, doubled per failed try up to maxDelayMs (with jitter). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  random?: () => number;
  /** A socket must stay open this long before the backoff starts again from its first step. */
  stableAfterMs?: number;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

const OPEN = 1;

/** `http://host/x` → `ws://host/x/api/ws`. */
export function socketUrl(jobsUrl: string): string {
  return jobsUrl.replace(/^http/, 'ws') + '/api/ws';
}

/** The reconnect delay after `failures` failed tries: exponential, capped, with jitter. */
export function backoffDelay(failures: number, baseMs: number, maxMs: number, random: () => number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(failures, 20));
  return Math.round(exp * (0.5 + random() / 2));
}

/**
 * One WebSocket to the job service's gateway (API §5), shared by every page. Reconnects with
 * backoff, joins its rooms again after a reconnect, and tells listeners to re-read their data
 * (`reconnected`), since events sent while it was away are lost.
 */
export class LiveClient {
  private socket: SocketLike | null = null;
  private running = false;
  private failures = 0;
  private openedAt: number | null = null;
  private timer: unknown = null;
  private currentMode: LiveMode = 'polling';
  private readonly rooms = new Set<string>();
  /** Rooms the server confirmed with `joined` since the socket opened. */
  private readonly confirmed = new Set<string>();
  private readonly listeners = new Map<keyof LiveEvents, Set<Listener<never>>>();
  private readonly modeListeners = new Set<(mode: LiveMode) => void>();
  private readonly options: Required<Omit<LiveClientOptions, 'renewSession'>> &
    Pick<LiveClientOptions, 'renewSession'>;

  constructor(
    private readonly url: string,
    options: LiveClientOptions = {},
  ) {
    this.options = {
      connect: options.connect ?? ((u) => new WebSocket(u) as unknown as SocketLike),
      renewSession: options.renewSession,
      baseDelayMs: options.baseDelayMs ?? 500,
      maxDelayMs: options.maxDelayMs ?? 15_000,
      random: options.random ?? Math.random,
      stableAfterMs: options.stableAfterMs ?? 5_000,
      now: options.now ?? Date.now,
      setTimer: options.setTimer ?? ((fn, ms) => setTimeout(fn, ms)),
      clearTimer: options.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>)),
    };
  }

  get mode(): LiveMode {
    return this.currentMode;
  }

  /** Rooms this client is in (or will join again after a reconnect). */
  get joinedRooms(): string[] {
    return [...this.rooms];
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.failures = 0;
    this.setMode('connecting');
    this.open();
  }

  /** Closes the socket for good (logout) and forgets the rooms. */
  stop(): void {
    this.running = false;
    this.rooms.clear();
    this.confirmed.clear();
    if (this.timer !== null) this.options.clearTimer(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onclose = null;
      socket.close(1000, 'bye');
    }
    this.setMode('polling');
  }

  /** Reconnects now (e.g. after the session was refreshed), skipping the backoff wait. */
  reconnectNow(): void {
    if (!this.running || this.currentMode === 'live') return;
    if (this.timer !== null) this.options.clearTimer(this.timer);
    this.timer = null;
    this.failures = 0;
    this.open();
  }

  on<E extends keyof LiveEvents>(event: E, listener: Listener<E>): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return () => set.delete(listener as Listener<never>);
  }

  onMode(listener: (mode: LiveMode) => void): () => void {
    this.modeListeners.add(listener);
    return () => this.modeListeners.delete(listener);
  }

  joinRoom(room: string): boolean {
    this.rooms.add(room);
    return this.send('joinRoom', { room });
  }

  leaveRoom(room: string): boolean {
    this.rooms.delete(room);
    return this.send('leaveRoom', { room });
  }

  sendMessage(room: string, message: string): boolean {
    return this.send('sendMessage', { room, message });
  }

  private send(event: string, data: unknown): boolean {
    if (!this.socket || this.socket.readyState !== OPEN) return false;
    this.socket.send(JSON.stringify({ event, data }));
    return true;
  }

  private open(): void {
    this.confirmed.clear();
    let socket: SocketLike;
    try {
      socket = this.options.connect(this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      this.openedAt = this.options.now();
      this.setMode('live');
      for (const room of this.rooms) this.send('joinRoom', { room });
      this.emit('reconnected', {});
    };
    socket.onmessage = (event) => {
      if (this.socket !== socket || typeof event.data !== 'string') return;
      this.dispatch(event.data);
    };
    socket.onerror = () => {
      // A close event always follows; reconnecting happens there.
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (!this.running) return;
      // A server that accepts and drops at once must not be hammered: only a socket that stayed
      // open a while resets the backoff.
      if (this.openedAt !== null && this.options.now() - this.openedAt >= this.options.stableAfterMs) this.failures = 0;
      this.openedAt = null;
      if (event.code >= 4000 && event.code < 5000 && this.options.renewSession) {
        // The session behind the socket ended: renew it (one refresh), then reconnect at once.
        this.setMode('polling');
        void this.options.renewSession().then((ok) => {
          if (ok && this.running) {
            this.failures = 0;
            this.open();
          } else if (this.running) {
            this.scheduleReconnect();
          }
        });
        return;
      }
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect(): void {
    this.setMode('polling');
    const delay = backoffDelay(this.failures, this.options.baseDelayMs, this.options.maxDelayMs, this.options.random);
    this.failures += 1;
    this.timer = this.options.setTimer(() => {
      this.timer = null;
      if (this.running) this.open();
    }, delay);
  }

  private dispatch(text: string): void {
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    const { event, data } = frame as { event?: unknown; data?: unknown };
    if (typeof event !== 'string' || !data || typeof data !== 'object') return;
    if (event === 'left') this.rooms.delete((data as { room: string }).room);
    if (event === 'error' && ROOM_REFUSALS.has((data as LiveError).code)) {
      // A refused room must not be joined again on every reconnect. Without a `room` in the
      // error, forget the rooms the server has not confirmed.
      const room = (data as LiveError).room;
      if (typeof room === 'string') this.rooms.delete(room);
      else for (const pending of this.pendingRooms()) this.rooms.delete(pending);
    }
    if (event === 'joined') this.confirmed.add((data as { room: string }).room);
    if (event === 'left') this.confirmed.delete((data as { room: string }).room);
    this.emit(event as keyof LiveEvents, data as never);
  }

  private pendingRooms(): string[] {
    return [...this.rooms].filter((room) => !this.confirmed.has(room));
  }

  private emit<E extends keyof LiveEvents>(event: E, data: LiveEvents[E]): void {
    for (const listener of this.listeners.get(event) ?? []) {
      (listener as Listener<E>)(data);
    }
  }

  private setMode(mode: LiveMode): void {
    if (mode === this.currentMode) return;
    this.currentMode = mode;
    for (const listener of this.modeListeners) listener(mode);
  }
}
