// @ts-check
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { newEmail, PASSWORD, screenshot } from '../browser.mjs';
import { assertNoReload, logIn, markDocument, newUser, signUp, submitJob, verifyByCode, waitForStatus } from '../flows.mjs';
import { withPage } from './env.mjs';

/** @param {import('./env.mjs').Env} env */
export function accountScenarios(env) {
  describe('accounts', () => {
    test('sign up → code from the email → verified → logged in → a job submitted completes without a reload', () =>
      withPage(env, async (page) => {
        const email = newEmail('ada');
        await page.goto(`${env.stack.appUrl}/signup`);
        await screenshot(page, 'signup');
        await signUp(page, env.stack, email);
        await screenshot(page, 'verify');
        await verifyByCode(page, env.stack, email);
        await page.getByText('Your email address is verified').waitFor();
        await screenshot(page, 'login');
        await logIn(page, env.stack, email);

        await markDocument(page);
        const id = await submitJob(page, {
          type: 'echo',
          fill: async (p) => p.getByLabel('Data (JSON object)').fill('{"greeting": "hello from the browser"}'),
        });
        await waitForStatus(page, 'completed');
        assert.match(await page.locator('[data-field="result"]').innerText(), /hello from the browser/);
        await page.getByRole('link', { name: /All your jobs/ }).click();
        await page.locator(`tr[data-job-id="${id}"][data-status="completed"]`).waitFor();
        await assertNoReload(page);
      }));

    test('the link in the verification email verifies the address too', () =>
      withPage(env, async (page) => {
        const email = newEmail('link');
        await signUp(page, env.stack, email);
        const { match } = await env.stack.mail.waitFor(email, /(http\S+\/verify-email\?token=[\w.~%-]+)/);
        const link = match[1] ?? '';
        assert.ok(link.startsWith(`${env.stack.appUrl}/verify-email?token=`), `the link points at the app: ${link}`);
        await page.goto(link);
        await page.getByText(/is verified/).waitFor();
        await screenshot(page, 'verify-email-link');
        await page.getByRole('link', { name: 'Sign in' }).click();
        await logIn(page, env.stack, email);
      }));

    test('a wrong password and a wrong code show the service’s message next to the field', () =>
      withPage(env, async (page) => {
        const email = newEmail('wrong');
        await signUp(page, env.stack, email);
        await page.getByLabel('Verification code').fill('000000');
        await page.getByRole('button', { name: 'Verify', exact: true }).click();
        const otpError = page.locator('.field--invalid .field__error');
        await otpError.waitFor();
        assert.match(await otpError.innerText(), /code/i);
        await verifyByCode(page, env.stack, email);
        await page.getByLabel('Email').fill(email);
        await page.getByLabel('Password').fill('not the password');
        await page.getByRole('button', { name: 'Sign in', exact: true }).click();
        const alert = page.locator('.alert--error');
        await alert.waitFor();
        assert.match(await alert.innerText(), /password|credentials/i);
      }));

    test('forgot password → email link → reset → the old password is refused, the new one works', () =>
      withPage(env, async (page) => {
        const email = newEmail('reset');
        await newUser(page, env.stack, email);
        await page.getByRole('button', { name: 'Sign out' }).click();
        await page.waitForURL(/\/login$/);
        await page.getByRole('link', { name: 'Forgot your password?' }).click();
        // The sign-in page has an Email field too: wait for the new page before filling it.
        await page.getByRole('heading', { name: 'Forgot your password?' }).waitFor();
        await page.getByLabel('Email').fill(email);
        await page.getByRole('button', { name: 'Email me a link' }).click();
        await page.getByText(/is on its way/).waitFor();
        const { match } = await env.stack.mail.waitFor(email, /(http\S+\/reset-password\?token=[\w.~%-]+)/);
        await page.goto(match[1] ?? '');
        const fresh = 'a brand new passphrase';
        await page.getByLabel('New password', { exact: true }).fill(fresh);
        await page.getByLabel('Repeat the new password').fill(fresh);
        await screenshot(page, 'reset-password');
        await page.getByRole('button', { name: 'Set the new password' }).click();
        await page.waitForURL(/\/login\?reset=1/);

        await page.getByLabel('Email').fill(email);
        await page.getByLabel('Password').fill(PASSWORD);
        await page.getByRole('button', { name: 'Sign in', exact: true }).click();
        await page.locator('.alert--error').waitFor();
        assert.match(page.url(), /\/login/);
        await logIn(page, env.stack, email, fresh);
      }));

    test('change password on the account page; a wrong current password is shown on that field', () =>
      withPage(env, async (page) => {
        const email = newEmail('change');
        await newUser(page, env.stack, email);
        await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Account' }).click();
        await page.getByLabel('Current password').fill('wrong password!');
        await page.getByLabel('New password', { exact: true }).fill('another good password');
        await page.getByLabel('Repeat the new password').fill('another good password');
        await page.getByRole('button', { name: 'Change password' }).click();
        const error = page.locator('.field--invalid').filter({ has: page.getByLabel('Current password') }).locator('.field__error');
        await error.waitFor();
        await screenshot(page, 'account');
        await page.getByLabel('Current password').fill(PASSWORD);
        await page.getByRole('button', { name: 'Change password' }).click();
        await page.getByText('Password changed').waitFor();
      }));

    test('an expired access token is refreshed once, transparently; a failed refresh returns to the login page', () =>
      withPage(env, async (page, context) => {
        const email = newEmail('refresh');
        await newUser(page, env.stack, email);
        const id = await submitJob(page, { type: 'noop', fill: (p) => p.getByLabel('Data (JSON object)').fill('') });
        await markDocument(page);
        // The access token is gone (as when it expires): the next call refreshes and goes on.
        await context.clearCookies({ name: 'access_token' });
        const refreshed = page.waitForResponse((r) => r.url().endsWith('/api/auth/refresh-token') && r.status() === 200);
        await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Jobs' }).click();
        await refreshed;
        await page.locator(`tr[data-job-id="${id}"]`).waitFor();
        const names = (await context.cookies()).map((c) => c.name);
        assert.ok(names.includes('access_token'), 'a new access token cookie was set by the refresh');
        await assertNoReload(page);
        assert.equal(await page.evaluate(() => JSON.stringify(localStorage)), '{}', 'nothing in localStorage');

        // Both tokens gone: the refresh fails and the app shows the login page.
        await context.clearCookies();
        await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'New job' }).click();
        await page.getByRole('heading', { name: 'New job' }).waitFor();
        await page.getByRole('button', { name: 'Submit job' }).click();
        await page.waitForURL(/\/login$/);
        await page.getByText('Your session has ended').waitFor();
      }));

    test('logging out returns to the login page and the back button shows nothing private', () =>
      withPage(env, async (page) => {
        const email = newEmail('logout');
        await newUser(page, env.stack, email);
        const id = await submitJob(page, { type: 'noop' });
        await waitForStatus(page, 'completed');
        await page.getByRole('button', { name: 'Sign out' }).click();
        await page.waitForURL(/\/login$/);
        await page.goBack();
        await page.waitForURL(/\/login/);
        await page.getByRole('heading', { name: 'Sign in' }).waitFor();
        const html = await page.content();
        assert.ok(!html.includes(id), 'the job id is nowhere on the page');
        assert.ok(!html.includes(email), 'the address is nowhere on the page');
        assert.equal(await page.getByRole('navigation', { name: 'Main' }).count(), 0, 'no signed-in navigation');
      }));
  });
}
