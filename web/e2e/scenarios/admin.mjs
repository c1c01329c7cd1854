// @ts-check
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { newEmail, screenshot } from '../browser.mjs';
import { logIn, newUser, submitJob, waitForStatus } from '../flows.mjs';

/** @param {import('./env.mjs').Env} env */
export function adminScenarios(env) {
  describe('admin', () => {
    test('an admin sees everyone’s jobs, filters by user, and cancels another user’s job; users never see the admin page', async () => {
      const userContext = await env.browser.newContext({ timezoneId: 'UTC' });
      const adminContext = await env.browser.newContext({ timezoneId: 'UTC', viewport: { width: 1280, height: 900 } });
      try {
        const user = await userContext.newPage();
        const admin = await adminContext.newPage();
        await newUser(user, env.stack, newEmail('user'));
        const adminEmail = newEmail('admin');
        await newUser(admin, env.stack, adminEmail);

        // Users: no Admin link, and the page is not there for them.
        assert.equal(await user.getByRole('link', { name: 'Admin' }).count(), 0);
        await user.goto(`${env.stack.appUrl}/admin`);
        await user.getByRole('heading', { name: 'Page not found' }).waitFor();

        const scheduled = await submitJob(user, {
          type: 'noop',
          fill: (p) => p.getByLabel('Data (JSON object)').fill(''),
          runAt: new Date(Date.now() + 3_600_000).toISOString().slice(0, 16),
        });
        await waitForStatus(user, 'scheduled');
        const userId = await user.evaluate(async (url) => {
          const response = await fetch(`${url}/api/auth/me`, { credentials: 'include' });
          const body = /** @type {{ user: { id: string } }} */ (await response.json());
          return body.user.id;
        }, env.stack.authUrl);
        const ownJob = await submitJob(admin, { type: 'noop', fill: (p) => p.getByLabel('Data (JSON object)').fill('') });

        // The role comes with a new session: sign out, grant, sign in again.
        await admin.getByRole('button', { name: 'Sign out' }).click();
        await admin.waitForURL(/\/login$/);
        await env.stack.grantAdmin(adminEmail);
        await logIn(admin, env.stack, adminEmail);
        await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).click();
        await admin.getByRole('heading', { name: 'All jobs' }).waitFor();
        await admin.locator(`tr[data-job-id="${scheduled}"]`).waitFor();
        await admin.locator(`tr[data-job-id="${ownJob}"]`).waitFor();
        await screenshot(admin, 'admin');

        // Pause and resume: the Queue card follows the service's answer and the stats show it.
        const paused = admin.locator('[data-field="paused"]');
        await admin.getByRole('button', { name: 'Pause sleep' }).click();
        await admin.waitForFunction(() => document.querySelector('[data-field="paused"]')?.textContent === 'Paused: sleep.');
        await admin.locator('[data-stat="paused"]').waitFor();
        await admin.getByRole('button', { name: 'Pause all' }).click();
        await admin.waitForFunction(() => document.querySelector('[data-field="paused"]')?.textContent === 'Every job type is paused.');
        await admin.getByRole('button', { name: 'Resume all' }).click();
        await admin.waitForFunction(() => document.querySelector('[data-field="paused"]')?.textContent === 'Every job type is running.');
        assert.equal(await paused.textContent(), 'Every job type is running.');

        await admin.getByLabel('User id').fill(userId);
        await admin.waitForFunction((id) => !document.querySelector(`tr[data-job-id="${id}"]`), ownJob);
        await admin.locator(`tr[data-job-id="${scheduled}"]`).waitFor();

        await admin.locator(`tr[data-job-id="${scheduled}"] a`).click();
        await waitForStatus(admin, 'scheduled');
        await admin.getByRole('button', { name: 'Cancel job' }).click();
        await waitForStatus(admin, 'cancelled');
        // The owner's page follows without a reload.
        await waitForStatus(user, 'cancelled');
      } finally {
        await userContext.close();
        await adminContext.close();
      }
    });
  });
}
