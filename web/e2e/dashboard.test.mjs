// @ts-check
// End-to-end tests of the dashboard in Debian's Chromium against the real services (see
// stack.mjs). `npm run e2e` runs them (scripts/test does, after `npm run build`); screenshots of
// the main pages land in e2e/artifacts/screenshots/, the services' logs in e2e/artifacts/logs/.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { syncGenerated } from '../scripts/openapi.mjs';
import { launchBrowser } from './browser.mjs';
import { accountScenarios } from './scenarios/accounts.mjs';
import { adminScenarios } from './scenarios/admin.mjs';
import { jobScenarios, jobsPageScenario } from './scenarios/jobs.mjs';
import { liveScenarios } from './scenarios/live.mjs';
import { scheduleScenarios } from './scenarios/schedules.mjs';
import { startStack } from './stack.mjs';

/** @type {import('./scenarios/env.mjs').Env} */
const env = /** @type {any} */ ({});

before(async () => {
  env.stack = await startStack();
  env.browser = await launchBrowser();
});

after(async () => {
  await env.browser?.close();
  await env.stack?.stop();
});

test('the typed client is generated from the OpenAPI documents the services serve now', async () => {
  // OPENAPI_UPDATE=1 rewrites the generated files instead (the test still fails, once).
  const changed = await syncGenerated(
    [
      { name: 'auth', url: env.stack.authUrl },
      { name: 'jobs', url: env.stack.jobsUrl },
    ],
    { update: process.env.OPENAPI_UPDATE === '1' },
  );
  assert.deepEqual(
    changed,
    [],
    `the OpenAPI document of ${changed.join(' and ')} changed: with the services running, run ` +
      '`npm run openapi:update` in web/ (or `OPENAPI_UPDATE=1 npm run e2e`) and fix what `npm run typecheck` then reports',
  );
});

accountScenarios(env);
jobScenarios(env);
adminScenarios(env);
liveScenarios(env);
scheduleScenarios(env);
jobsPageScenario(env);
