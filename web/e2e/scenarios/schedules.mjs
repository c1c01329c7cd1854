// @ts-check
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { newEmail, screenshot } from '../browser.mjs';
import { newUser, submitJob, waitForStatus } from '../flows.mjs';
import { withPage } from './env.mjs';

/** @param {import('./env.mjs').Env} env */
export function scheduleScenarios(env) {
  describe('schedules and job logs', () => {
    test('a schedule is created, runs, pauses, resumes and is deleted from the schedules page', () =>
      withPage(env, async (page) => {
        await newUser(page, env.stack, newEmail('schedules'));
        await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Schedules' }).click();
        await page.getByRole('heading', { name: 'Schedules' }).waitFor();
        await page.getByText('No schedules yet.').waitFor();

        // A client-side check names the field before anything is sent.
        const form = page.getByRole('form', { name: 'New schedule' });
        await form.getByLabel('Name').fill('Every two seconds');
        await form.getByLabel('Cron expression').fill('* * *');
        await form.getByRole('button', { name: 'Create schedule' }).click();
        await form.getByText(/Use five fields/).waitFor();
        // The service's check of the zone lands on its field.
        await form.getByLabel('Cron expression').fill('*/2 * * * * *');
        await form.getByLabel('Time zone').fill('Mars/Olympus');
        await form.getByRole('button', { name: 'Create schedule' }).click();
        await form.locator('.field--invalid', { hasText: 'Time zone' }).waitFor();
        await form.getByLabel('Time zone').fill('Europe/Berlin');
        await form.getByLabel('Job type').selectOption('echo');
        await form.getByLabel('Job data (JSON object)').fill('{"from": "schedule"}');
        await form.getByRole('button', { name: 'Create schedule' }).click();

        const row = page.locator('tr[data-schedule-id]', { hasText: 'Every two seconds' });
        await row.waitFor();
        assert.equal(await row.getAttribute('data-paused'), 'false');
        assert.match(await row.innerText(), /\*\/2 \* \* \* \* \*\s+Europe\/Berlin/);
        // It runs: the list refreshes its last run, and its jobs appear on the jobs page.
        await row.locator('[data-field="last_run_at"] time').waitFor({ timeout: 15_000 });
        await screenshot(page, 'schedules');

        await row.getByRole('button', { name: 'Pause Every two seconds' }).click();
        await page.locator('tr[data-paused="true"]', { hasText: 'Every two seconds' }).waitFor();
        assert.equal(await row.locator('[data-field="next_run_at"]').innerText(), '—');
        await row.getByRole('button', { name: 'Resume Every two seconds' }).click();
        await page.locator('tr[data-paused="false"]', { hasText: 'Every two seconds' }).waitFor();

        await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Jobs' }).click();
        await page.locator('tbody tr[data-job-id] a').first().click();
        await waitForStatus(page, 'completed');
        await page.locator('[data-field="schedule_id"]').waitFor();
        assert.match(await page.locator('[data-field="result"]').innerText(), /"from": "schedule"/);

        await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Schedules' }).click();
        await row.getByRole('button', { name: 'Delete Every two seconds' }).click();
        await page.getByText('No schedules yet.').waitFor();
      }));

    test('the job page shows the log of a sleep job (refreshed on request and when it ends) and why a failing job failed', () =>
      withPage(env, async (page) => {
        await newUser(page, env.stack, newEmail('logs'));
        await submitJob(page, { type: 'sleep', fill: (p) => p.getByLabel('Duration (ms)').fill('2000') });
        const log = page.getByRole('list', { name: 'Log lines' });
        await page.locator('.job-detail[data-status="running"]').waitFor();
        await page.waitForTimeout(600);
        await page.getByRole('button', { name: 'Refresh log' }).click();
        await log.getByText('sleeping 2000 ms').waitFor();
        await waitForStatus(page, 'completed');
        // Read again by itself when the job ended.
        await log.getByText('done: slept 2000 ms').waitFor({ timeout: 5_000 });
        const steps = await log.locator('li', { hasText: /^.*progress \d+%/ }).count();
        assert.ok(steps >= 3, `progress steps logged: ${steps}`);
        await screenshot(page, 'job-log');

        await submitJob(page, {
          type: 'noop',
          fill: (p) => p.getByLabel('Data (JSON object)').fill(''),
          maxAttempts: '1',
          shouldFail: true,
        });
        await waitForStatus(page, 'failed');
        await log.locator('li[data-level="error"]', { hasText: 'failed on purpose (shouldFail)' }).waitFor();
      }));
  });
}
