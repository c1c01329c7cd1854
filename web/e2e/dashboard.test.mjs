// @ts-check
// End-to-end tests of the dashboard in Debian's Chromium against the real services (see
// stack.mjs). Run through `npm run e2e` (scripts/test does), after `npm run build`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { launchBrowser, newEmail, screenshot } from './browser.mjs';
import { assertNoReload, logIn, markDocument, signUp, submitJob, verifyByCode, waitForStatus } from './flows.mjs';
import { syncGenerated } from '../scripts/openapi.mjs';
import { startStack } from './stack.mjs';

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  stack = await startStack();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

test('the typed client is generated from the OpenAPI documents the services serve now', async () => {
  const changed = await syncGenerated([
    { name: 'auth', url: stack.authUrl },
    { name: 'jobs', url: stack.jobsUrl },
  ]);
  assert.deepEqual(
    changed,
    [],
    `the OpenAPI document of ${changed.join(' and ')} changed: with the services running, run ` +
      '`npm run openapi:update` in web/ and fix what `npm run typecheck` then reports',
  );
});

describe('accounts', () => {
  test('sign up → code from the email → verified → logged in → a job submitted completes without a reload', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const email = newEmail('ada');
    await signUp(page, stack, email);
    await screenshot(page, 'verify');
    await verifyByCode(page, stack, email);
    await page.getByText('Your email address is verified').waitFor();
    await screenshot(page, 'login');
    await logIn(page, stack, email);

    await markDocument(page);
    const id = await submitJob(page, {
      type: 'echo',
      fill: async (p) => p.getByLabel('Data (JSON object)').fill('{"greeting": "hello from the browser"}'),
    });
    await waitForStatus(page, 'completed');
    assert.match(await page.locator('[data-field="result"]').innerText(), /hello from the browser/);
    await assertNoReload(page);

    await page.getByRole('link', { name: /All your jobs/ }).click();
    await page.locator(`tr[data-job-id="${id}"][data-status="completed"]`).waitFor();
    await context.close();
  });
});
