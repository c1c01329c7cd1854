// @ts-check
// User journeys the scenarios build on, done through the UI as a person would.
import assert from 'node:assert/strict';
import { PASSWORD } from './browser.mjs';

/** @typedef {import('playwright-core').Page} Page */
/** @typedef {Awaited<ReturnType<typeof import('./stack.mjs').startStack>>} Stack */

/** Signs up through the form; resolves once the verify page shows. @param {Page} page @param {Stack} stack @param {string} email */
export async function signUp(page, stack, email, password = PASSWORD) {
  await page.goto(`${stack.appUrl}/signup`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('Repeat the password').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL(/\/verify\?/);
}

/** Verifies with the six-digit code from the email. @param {Page} page @param {Stack} stack @param {string} email */
export async function verifyByCode(page, stack, email) {
  const { match } = await stack.mail.waitFor(email, /Verification code: (\d{6})/);
  assert.equal(await page.getByLabel('Email').inputValue(), email, 'the verify page knows the address');
  await page.getByLabel('Verification code').fill(match[1] ?? '');
  await page.getByRole('button', { name: 'Verify', exact: true }).click();
  await page.waitForURL(/\/login\?verified=1/);
}

/** Signs in and lands on the jobs page. @param {Page} page @param {Stack} stack @param {string} email */
export async function logIn(page, stack, email, password = PASSWORD) {
  if (!page.url().includes('/login')) await page.goto(`${stack.appUrl}/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL(/\/jobs$/);
  await page.getByRole('heading', { name: /jobs/ }).waitFor();
}

/** A new verified, signed-in user in `page`. @param {Page} page @param {Stack} stack @param {string} email */
export async function newUser(page, stack, email) {
  await signUp(page, stack, email);
  await verifyByCode(page, stack, email);
  await logIn(page, stack, email);
}

/**
 * Submits a job from the New job form and waits for its page.
 * @param {Page} page
 * @param {{ type: string, fill?: (page: Page) => Promise<void>, runAt?: string, maxAttempts?: string, shouldFail?: boolean }} job
 * @returns {Promise<string>} the job's id
 */
export async function submitJob(page, job) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'New job' }).click();
  // The jobs page has a "Type" filter too: wait for the form before choosing the type.
  await page.getByRole('heading', { name: 'New job' }).waitFor();
  await page.getByLabel('Type').selectOption(job.type);
  if (job.fill) await job.fill(page);
  if (job.runAt) await page.getByLabel('Run at').fill(job.runAt);
  if (job.maxAttempts) await page.getByLabel('Max attempts').fill(job.maxAttempts);
  if (job.shouldFail) await page.getByLabel(/Every attempt fails/).check();
  await page.getByRole('button', { name: 'Submit job' }).click();
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
  return page.url().split('/').pop() ?? '';
}

/** Waits for the job page to show `status`. @param {Page} page @param {string} status */
export async function waitForStatus(page, status, timeout = 30_000) {
  await page.locator(`.job-detail[data-status="${status}"]`).waitFor({ timeout });
}

/**
 * Marks the document, so that `assertNoReload` can tell the page was never reloaded.
 * @param {Page} page
 */
export async function markDocument(page) {
  await page.evaluate(() => {
    /** @type {any} */ (globalThis).__tvMark = 'not reloaded';
  });
}

/** @param {Page} page */
export async function assertNoReload(page) {
  assert.equal(await page.evaluate(() => /** @type {any} */ (globalThis).__tvMark), 'not reloaded', 'the page was reloaded');
}
