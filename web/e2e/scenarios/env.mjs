// @ts-check
/**
 * What every scenario works with, set in the suite's `before`.
 * @typedef {{ stack: Awaited<ReturnType<typeof import('../stack.mjs').startStack>>, browser: import('playwright-core').Browser }} Env
 */

/**
 * A fresh browser context (its own cookies: one user) and a page in it, closed after `body`.
 * @template T
 * @param {Env} env
 * @param {(page: import('playwright-core').Page, context: import('playwright-core').BrowserContext) => Promise<T>} body
 * @param {import('playwright-core').BrowserContextOptions} [options]
 */
export async function withPage(env, body, options = {}) {
  const context = await env.browser.newContext({ viewport: { width: 1280, height: 860 }, timezoneId: 'UTC', ...options });
  try {
    const page = await context.newPage();
    return await body(page, context);
  } finally {
    await context.close();
  }
}
