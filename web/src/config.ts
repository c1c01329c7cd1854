/** Where the two services are: read at run time from /config.json beside index.html. */
export interface AppConfig {
  authUrl: string;
  jobsUrl: string;
}

/** Validates the parsed config.json (trailing slashes removed). */
export function parseConfig(value: unknown): AppConfig {
  if (!value || typeof value !== 'object') throw new Error('config.json must be a JSON object');
  const v = value as Record<string, unknown>;
  const url = (key: 'authUrl' | 'jobsUrl'): string => {
    const raw = v[key];
    if (typeof raw !== 'string' || !/^https?:\/\/[^/]+/.test(raw)) {
      throw new Error(`config.json: "${key}" must be an http(s) URL such as "http://localhost:8081"`);
    }
    return raw.replace(/\/+$/, '');
  };
  return { authUrl: url('authUrl'), jobsUrl: url('jobsUrl') };
}

export async function loadConfig(): Promise<AppConfig> {
  const response = await fetch(`${import.meta.env.BASE_URL}config.json`, { cache: 'no-store' });
  if (!response.ok) throw new Error(`config.json could not be loaded (HTTP ${response.status})`);
  return parseConfig(await response.json());
}
