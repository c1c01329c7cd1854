// @ts-check
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { newEmail, screenshot } from '../browser.mjs';
import { assertNoReload, markDocument, newUser, submitJob, waitForStatus } from '../flows.mjs';
import { withPage } from './env.mjs';

/** `datetime-local` value for a moment `ms` from now, in the browser's (UTC) zone. @param {number} ms */
function localInput(ms) {
  return new Date(Date.now() + ms).toISOString().slice(0, 16);
}

/** @param {import('./env.mjs').Env} env */
export function jobScenarios(env) {
  describe('jobs', () => {
    test('each built-in type reaches its final state without a reload; a sleep job’s progress bar moves', () =>
      withPage(env, async (page) => {
        const email = newEmail('types');
        await newUser(page, env.stack, email);
        await markDocument(page);

        await submitJob(page, { type: 'noop', fill: (p) => p.getByLabel('Data (JSON object)').fill('') });
        await waitForStatus(page, 'completed');

        await submitJob(page, { type: 'echo', fill: (p) => p.getByLabel('Data (JSON object)').fill('{"n": 42}') });
        await waitForStatus(page, 'completed');
        assert.match(await page.locator('[data-field="result"]').innerText(), /"n": 42/);

        await submitJob(page, { type: 'hash', fill: (p) => p.getByLabel('Text').fill('hello') });
        await waitForStatus(page, 'completed');
        const hex = createHash('sha256').update('hello').digest('hex');
        assert.match(await page.locator('[data-field="result"]').innerText(), new RegExp(hex));

        const since = Date.now();
        await submitJob(page, {
          type: 'send_email',
          fill: async (p) => {
            assert.equal(await p.getByLabel('To').inputValue(), email, 'the form suggests the user’s own address');
            await p.getByLabel('Subject').fill('From the dashboard');
            await p.getByLabel('Message').fill('Sent by a send_email job.');
          },
        });
        await waitForStatus(page, 'completed');
        await env.stack.mail.waitFor(email, /Sent by a send_email job/, { since });

        await submitJob(page, { type: 'sleep', fill: (p) => p.getByLabel('Duration (ms)').fill('7000') });
        await screenshot(page, 'new-job-sleep-submitted');
        const bar = page.getByRole('progressbar', { name: 'Progress' });
        /** @type {Set<number>} */
        const seen = new Set();
        let shot = false;
        const deadline = Date.now() + 30_000;
        while (Date.now() < deadline) {
          seen.add(Number(await bar.getAttribute('aria-valuenow')));
          if ((await page.locator('.job-detail').getAttribute('data-status')) === 'completed') break;
          if (!shot && seen.size >= 3) {
            shot = true;
            await screenshot(page, 'job-running');
          }
          await page.waitForTimeout(200);
        }
        await waitForStatus(page, 'completed', 1000);
        seen.add(Number(await bar.getAttribute('aria-valuenow')));
        const between = [...seen].filter((v) => v > 0 && v < 100);
        assert.ok(between.length >= 1, `the bar showed progress between 0 and 100 (saw ${[...seen].join(', ')})`);
        assert.ok(seen.has(100), 'the bar ends full');
        await assertNoReload(page);

        await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Jobs' }).click();
        await page.locator('tr[data-status="completed"]').nth(4).waitFor();
        await page.locator('[data-stat="completed"] .bars__value', { hasText: '5' }).waitFor();
        await screenshot(page, 'jobs-types');
        // Filters are applied by the service.
        await page.getByLabel('Type').selectOption('hash');
        await page.locator('tbody tr[data-job-id]').first().waitFor();
        await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-job-id]').length === 1);
        await page.getByLabel('Type').selectOption('');
        await page.getByLabel('Status').selectOption('failed');
        await page.getByText('No jobs here yet.').waitFor();
        await page.getByLabel('Status').selectOption('');
        await page.locator('tbody tr[data-job-id]').nth(4).waitFor();
      }));

    test('shouldFail shows its retries and ends failed; retry runs it again', () =>
      withPage(env, async (page) => {
        await newUser(page, env.stack, newEmail('fail'));
        await markDocument(page);
        await submitJob(page, {
          type: 'noop',
          fill: (p) => p.getByLabel('Data (JSON object)').fill(''),
          maxAttempts: '3',
          shouldFail: true,
        });
        await waitForStatus(page, 'failed');
        assert.equal(await page.locator('[data-field="attempts"]').innerText(), '3 of 3');
        assert.notEqual((await page.locator('[data-field="last_error"]').innerText()).trim(), 'none');
        await screenshot(page, 'job-failed');
        await page.getByRole('button', { name: 'Retry job' }).click();
        await page.locator('.job-detail:not([data-status="failed"])').waitFor();
        await waitForStatus(page, 'failed');
        assert.equal(await page.locator('[data-field="attempts"]').innerText(), '3 of 3');
        await assertNoReload(page);
      }));

    test('failTimes: the first attempts fail, then the job completes', () =>
      withPage(env, async (page) => {
        await newUser(page, env.stack, newEmail('failtimes'));
        await submitJob(page, {
          type: 'echo',
          fill: async (p) => {
            await p.getByLabel('Data (JSON object)').fill('{"x": 1}');
            await p.getByLabel(/failTimes/).fill('2');
          },
        });
        await waitForStatus(page, 'completed');
        assert.equal(await page.locator('[data-field="attempts"]').innerText(), '3 of 3');
      }));

    test('a scheduled job can be cancelled, and then retried', () =>
      withPage(env, async (page) => {
        await newUser(page, env.stack, newEmail('cancel'));
        await submitJob(page, { type: 'noop', fill: (p) => p.getByLabel('Data (JSON object)').fill(''), runAt: localInput(3_600_000) });
        await waitForStatus(page, 'scheduled');
        await page.getByRole('button', { name: 'Cancel job' }).click();
        await waitForStatus(page, 'cancelled');
        assert.equal(await page.getByRole('button', { name: 'Cancel job' }).count(), 0);
        await page.getByRole('button', { name: 'Retry job' }).waitFor();
      }));

    test('a problem from the service is shown next to the field it names', () =>
      withPage(env, async (page) => {
        await newUser(page, env.stack, newEmail('problem'));
        await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'New job' }).click();
        await page.getByRole('heading', { name: 'New job' }).waitFor();
        await page.getByLabel('Type').selectOption('send_email');
        // Only admins may email other addresses: the service refuses with 422 on data.to.
        await page.getByLabel('To').fill('someone-else@example.com');
        await page.getByLabel('Subject').fill('Hi');
        await page.getByLabel('Message').fill('Hello');
        await page.getByRole('button', { name: 'Submit job' }).click();
        const error = page.locator('.field--invalid').filter({ has: page.getByLabel('To') }).locator('.field__error');
        await error.waitFor();
        assert.ok((await error.innerText()).length > 5, 'the service’s message is shown');
        await screenshot(page, 'new-job-problem');
        assert.match(page.url(), /\/jobs\/new$/);
      }));

    test('two users never see each other’s jobs', async () => {
      const a = await env.browser.newContext();
      const b = await env.browser.newContext();
      try {
        const pageA = await a.newPage();
        const pageB = await b.newPage();
        await newUser(pageA, env.stack, newEmail('alice'));
        await newUser(pageB, env.stack, newEmail('bob'));
        const idA = await submitJob(pageA, { type: 'noop', fill: (p) => p.getByLabel('Data (JSON object)').fill('') });
        const idB = await submitJob(pageB, { type: 'noop', fill: (p) => p.getByLabel('Data (JSON object)').fill('') });
        /** @type {[import('playwright-core').Page, string, string][]} */
        const views = [
          [pageA, idA, idB],
          [pageB, idB, idA],
        ];
        for (const [page, own, other] of views) {
          await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Jobs' }).click();
          await page.locator(`tr[data-job-id="${own}"]`).waitFor();
          assert.equal(await page.locator(`tr[data-job-id="${other}"]`).count(), 0);
          await page.goto(`${env.stack.appUrl}/jobs/${other}`);
          await page.locator('.alert--error').waitFor();
          assert.match(await page.locator('.alert--error').innerText(), /not found|no such job/i);
        }
      } finally {
        await a.close();
        await b.close();
      }
    });
  });
}

/** @param {import('./env.mjs').Env} env */
export function jobsPageScenario(env) {
  test('the jobs page shows jobs in every state, with the statistics (README screenshot)', () =>
    withPage(env, async (page) => {
      await newUser(page, env.stack, newEmail('showcase'));
      // Submitted through the service, as another client would; the page must show them.
      const submit = (/** @type {object} */ body) =>
        page.evaluate(
          async ([url, payload]) => {
            const response = await fetch(`${url}/api/jobs/submit`, {
              method: 'POST',
              credentials: 'include',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify(payload),
            });
            if (!response.ok) throw new Error(`submit answered ${response.status}`);
            return /** @type {{ job: { id: string } }} */ (await response.json()).job.id;
          },
          /** @type {[string, object]} */ ([env.stack.jobsUrl, body]),
        );
      const later = new Date(Date.now() + 3_600_000).toISOString();
      await submit({ type: 'hash', data: { text: 'hello', algorithm: 'sha256' }, priority: 10 });
      await submit({ type: 'echo', data: { report: 'weekly' } });
      await submit({ type: 'echo', data: { shouldFail: true }, max_attempts: 1 });
      const toCancel = await submit({ type: 'noop', run_at: later });
      await submit({ type: 'send_email', data: { to: 'x', subject: 's', body: 'b' } }).catch(() => null);
      await submit({ type: 'noop', run_at: later, priority: -5 });
      const sleeper = await submit({ type: 'sleep', data: { ms: 120_000 }, priority: 5 });
      await page.evaluate(
        async ([url, id]) => fetch(`${url}/api/jobs/${id}/cancel`, { method: 'POST', credentials: 'include' }),
        [env.stack.jobsUrl, toCancel],
      );

      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Jobs' }).click();
      for (const status of ['running', 'scheduled', 'failed', 'completed', 'cancelled']) {
        await page.locator(`tr[data-status="${status}"]`).first().waitFor();
      }
      await page.waitForFunction(() => {
        const bar = document.querySelector(`tr[data-status="running"] [role="progressbar"]`);
        return Number(bar?.getAttribute('aria-valuenow')) > 0;
      });
      await page.locator('[data-stat="completed"] .bars__value', { hasText: '2' }).waitFor();
      await page.locator('[data-stat="scheduled"] .bars__value', { hasText: '1' }).waitFor();
      await screenshot(page, 'jobs');
      await page.setViewportSize({ width: 390, height: 844 });
      await screenshot(page, 'jobs-phone');
      await page.evaluate(
        async ([url, id]) => fetch(`${url}/api/jobs/${id}/cancel`, { method: 'POST', credentials: 'include' }),
        [env.stack.jobsUrl, sleeper],
      );
    }));
}
