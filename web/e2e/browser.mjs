// @ts-check
// Debian's Chromium driven by playwright-core, and the steps every scenario shares.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { artifactsDir } from './stack.mjs';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const screenshotsDir = join(artifactsDir, 'screenshots');

/**
 * Headless Chromium. Playwright gives it a fresh, empty profile (--user-data-dir) each launch;
 * the background-networking flags keep it from calling out (the machine may have no internet).
 */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** @param {import('playwright-core').Page} page @param {string} name */
export async function screenshot(page, name) {
  mkdirSync(screenshotsDir, { recursive: true });
  // Transitions (the progress bar's width) are finished first, so a picture shows the state.
  await page.screenshot({ path: join(screenshotsDir, `${name}.png`), fullPage: true, animations: 'disabled' });
}

let counter = 0;
/** A fresh address for one test user. @param {string} label */
export function newEmail(label) {
  counter += 1;
  return `${label}-${Date.now().toString(36)}-${counter}@example.com`;
}

export const PASSWORD = 'correct horse battery';
