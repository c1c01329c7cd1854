// @ts-check
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { newEmail, screenshot } from '../browser.mjs';
import { assertNoReload, logIn, markDocument, newUser, submitJob, waitForStatus } from '../flows.mjs';
import { withPage } from './env.mjs';

/** @param {import('playwright-core').Page} page */
const waitLive = (page) => page.locator('.live[data-mode="live"]').waitFor();

/** @param {import('./env.mjs').Env} env */
export function liveScenarios(env) {
  describe('live updates', () => {
    test('a job page follows its sleep job by push: the bar moves, and nothing polls while live', () =>
      withPage(env, async (page) => {
        await newUser(page, env.stack, newEmail('push'));
        await waitLive(page);
        await markDocument(page);
        await submitJob(page, { type: 'sleep', fill: (p) => p.getByLabel('Duration (ms)').fill('3000') });
        await page.locator('.job-detail').waitFor();
        // From now on the page must not read the job again: every change arrives on the socket.
        // The log is read again only when a pushed change moves the job to another state.
        /** @type {string[]} */
        const reads = [];
        /** @type {string[]} */
        const logReads = [];
        page.on('request', (request) => {
          if (request.method() !== 'GET' || !request.url().includes('/api/jobs/')) return;
          (request.url().endsWith('/logs') ? logReads : reads).push(request.url());
        });
        const bar = page.getByRole('progressbar', { name: 'Progress' });
        /** @type {Set<number>} */
        const seen = new Set();
        const deadline = Date.now() + 30_000;
        while (Date.now() < deadline) {
          seen.add(Number(await bar.getAttribute('aria-valuenow')));
          if ((await page.locator('.job-detail').getAttribute('data-status')) === 'completed') break;
          await page.waitForTimeout(100);
        }
        await waitForStatus(page, 'completed', 1000);
        const between = [...seen].filter((v) => v > 0 && v < 100);
        assert.ok(between.length >= 2, `the bar moved in steps (saw ${[...seen].join(', ')})`);
        assert.deepEqual(reads, [], 'no polling while the socket is live');
        assert.ok(logReads.length <= 2, `the log is read once per state change at most: ${logReads.length}`);
        await assertNoReload(page);
      }));

    test('when the socket drops, the indicator says so and the page polls; it reconnects by itself and re-reads', () =>
      withPage(env, async (page) => {
        await newUser(page, env.stack, newEmail('reconnect'));
        await waitLive(page);
        await markDocument(page);
        await submitJob(page, { type: 'sleep', fill: (p) => p.getByLabel('Duration (ms)').fill('4000') });
        await page.locator('.job-detail[data-status="running"]').waitFor();
        // The job service goes away (its sockets close) while the worker finishes the job.
        await env.stack.restartJobService(async () => {
          await page.locator('.live[data-mode="polling"]').waitFor();
          await screenshot(page, 'offline');
          await new Promise((r) => setTimeout(r, 4500));
        });
        await waitLive(page);
        await waitForStatus(page, 'completed');
        await assertNoReload(page);
      }));

    test('an admin’s live feed shows another user’s jobs as they change', async () => {
      const userContext = await env.browser.newContext({ timezoneId: 'UTC' });
      const adminContext = await env.browser.newContext({ timezoneId: 'UTC', viewport: { width: 1280, height: 1100 } });
      try {
        const user = await userContext.newPage();
        const admin = await adminContext.newPage();
        await newUser(user, env.stack, newEmail('watched'));
        const adminEmail = newEmail('watcher');
        await newUser(admin, env.stack, adminEmail);
        await admin.getByRole('button', { name: 'Sign out' }).click();
        await admin.waitForURL(/\/login$/);
        await env.stack.grantAdmin(adminEmail);
        await logIn(admin, env.stack, adminEmail);
        await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).click();
        await waitLive(admin);
        await admin.getByRole('heading', { name: 'Live feed' }).waitFor();
        await markDocument(admin);

        const id = await submitJob(user, { type: 'sleep', fill: (p) => p.getByLabel('Duration (ms)').fill('1500') });
        await admin.locator(`.feed li[data-job-id="${id}"]`).waitFor();
        await admin.locator(`tr[data-job-id="${id}"]`).waitFor();
        await admin.locator(`tr[data-job-id="${id}"][data-status="completed"]`).waitFor();
        await screenshot(admin, 'admin-live-feed');
        await assertNoReload(admin);
      } finally {
        await userContext.close();
        await adminContext.close();
      }
    });

    test('rooms: two users see each other’s messages; a refused room and an oversize message show the server’s error', async () => {
      const a = await env.browser.newContext({ timezoneId: 'UTC' });
      const b = await env.browser.newContext({ timezoneId: 'UTC' });
      try {
        const pageA = await a.newPage();
        const pageB = await b.newPage();
        const emailA = newEmail('roomA');
        const emailB = newEmail('roomB');
        await newUser(pageA, env.stack, emailA);
        await newUser(pageB, env.stack, emailB);
        const room = `team-${Date.now().toString(36)}`;
        for (const page of [pageA, pageB]) {
          await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Rooms' }).click();
          await waitLive(page);
          await page.getByLabel('Room name').fill(room);
          await page.getByRole('button', { name: 'Join' }).click();
          await page.getByRole('heading', { name: room }).waitFor();
        }
        await pageA.getByLabel('Message').fill('hello from A');
        await pageA.getByRole('button', { name: 'Send' }).click();
        await pageB.locator('.message', { hasText: 'hello from A' }).filter({ hasText: emailA }).waitFor();
        await pageB.getByLabel('Message').fill('hello back from B');
        await pageB.getByRole('button', { name: 'Send' }).click();
        await pageA.locator('.message', { hasText: 'hello back from B' }).filter({ hasText: emailB }).waitFor();
        await screenshot(pageA, 'rooms');

        await pageA.getByLabel('Message').fill('x'.repeat(5000));
        await pageA.getByRole('button', { name: 'Send' }).click();
        await pageA.locator('.alert--error', { hasText: 'message_too_large' }).waitFor();

        await pageB.getByLabel('Room name').fill('admin:secrets');
        await pageB.getByRole('button', { name: 'Join' }).click();
        await pageB.locator('.alert--error', { hasText: 'forbidden' }).waitFor();
        assert.equal(await pageB.getByRole('tab', { name: 'admin:secrets' }).count(), 0);

        await pageB.getByRole('button', { name: 'Leave' }).click();
        await pageB.getByRole('heading', { name: room }).waitFor({ state: 'detached' });
        await pageA.getByLabel('Message').fill('anyone left?');
        await pageA.getByRole('button', { name: 'Send' }).click();
        await pageA.locator('.message', { hasText: 'anyone left?' }).waitFor();
        await pageB.waitForTimeout(500);
        assert.equal(await pageB.locator('.message', { hasText: 'anyone left?' }).count(), 0, 'B left the room');
      } finally {
        await a.close();
        await b.close();
      }
    });
  });
}
