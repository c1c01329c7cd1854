// @ts-check
import { describe, test } from 'node:test';
import { newEmail } from '../browser.mjs';
import { newUser } from '../flows.mjs';
import { withPage } from './env.mjs';

/** @param {import('./env.mjs').Env} env */
export function liveScenarios(env) {
  describe('live updates', () => {
    test('without a WebSocket gateway the indicator says the page is polling', () =>
      withPage(env, async (page) => {
        await newUser(page, env.stack, newEmail('poll'));
        await page.locator('.live[data-mode="polling"]').waitFor();
      }));
  });
}
