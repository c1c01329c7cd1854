import { ApiError, errorFromResponse, networkError } from './problem';

export type Query = Record<string, string | number | null | undefined>;

export interface RequestOptions {
  body?: unknown;
  query?: Query;
  headers?: Record<string, string>;
  /**
   * Whether a 401 means "the access token expired": refresh once and retry. False for the
   * calls that establish a session (login, refresh itself, verification...).
   */
  session?: boolean;
}

/**
 * Keeps the session alive: one refresh at a time, shared by every call that saw a 401 at the
 * same moment (several parallel requests must not spend the refresh token several times).
 */
export class SessionKeeper {
  private inFlight: Promise<boolean> | null = null;

  /**
   * @param refreshCall performs the refresh; resolves true when new cookies were set.
   * @param onExpired called once a refresh failed: the session is over (show the login page).
   */
  constructor(
    private readonly refreshCall: () => Promise<boolean>,
    private readonly onExpired: () => void,
  ) {}

  /** Refreshes (or joins the refresh under way). False: the session is over. */
  refresh(): Promise<boolean> {
    if (!this.inFlight) {
      this.inFlight = this.refreshCall()
        .catch(() => false)
        .then((ok) => {
          if (!ok) this.onExpired();
          return ok;
        })
        .finally(() => {
          this.inFlight = null;
        });
    }
    return this.inFlight;
  }
}

/**
 * A JSON-over-HTTP client for one service. Cookies carry the credentials (`credentials:
 * 'include'`); the app never sees or stores a token.
 */
export class HttpClient {
  constructor(
    private readonly baseUrl: string,
    private readonly service: string,
    private readonly session: SessionKeeper | null,
    private readonly fetchImpl: typeof fetch = (...args) => fetch(...args),
  ) {}

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const useSession = options.session !== false && this.session !== null;
    let response = await this.send(method, path, options);
    if (response.status === 401 && useSession && this.session) {
      // The access token expired (or was revoked): refresh once, then try again once.
      if (await this.session.refresh()) {
        response = await this.send(method, path, options);
      }
    }
    if (!response.ok) {
      throw await errorFromResponse(response);
    }
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  private async send(method: string, path: string, options: RequestOptions): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    try {
      return await this.fetchImpl(this.url(path, options.query), {
        method,
        headers,
        body,
        credentials: 'include',
        cache: 'no-store',
      });
    } catch {
      throw networkError(this.service);
    }
  }

  private url(path: string, query?: Query): string {
    const url = new URL(this.baseUrl + path);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, String(value));
    }
    return url.toString();
  }
}

export { ApiError };
