import { describe, expect, it } from 'vitest';
import { parseConfig } from './config';

describe('config.json', () => {
  it('takes the two service URLs, without trailing slashes', () => {
    expect(parseConfig({ authUrl: 'https://auth.example.com/', jobsUrl: 'http://localhost:8082' })).toEqual({
      authUrl: 'https://auth.example.com',
      jobsUrl: 'http://localhost:8082',
    });
  });
  it('says which key is wrong', () => {
    expect(() => parseConfig({ authUrl: 'localhost:8081', jobsUrl: 'http://x' })).toThrow(/"authUrl"/);
    expect(() => parseConfig({ authUrl: 'http://x' })).toThrow(/"jobsUrl"/);
    expect(() => parseConfig('nope')).toThrow(/JSON object/);
  });
});
