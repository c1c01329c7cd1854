// @ts-check
// The typed client's types come from the services' OpenAPI documents. This module turns a live
// document into TypeScript and compares it with the committed file in src/api/generated/, so a
// contract change fails the test run (and, once the file is regenerated, the type-check shows
// every place in the client that no longer fits). Prose (descriptions, summaries) is left out:
// only the shapes of routes, bodies and answers make the contract, so rewording a service's docs
// does not fail anyone's run.
//
//   node scripts/openapi.mjs check  AUTH_URL JOBS_URL   # exit 1 when a document changed
//   node scripts/openapi.mjs update AUTH_URL JOBS_URL   # rewrite src/api/generated/*.ts
//
// The e2e harness (e2e/stack.mjs) runs the check against the services it starts.
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import openapiTS, { astToString } from 'openapi-typescript';

const generatedDir = new URL('../src/api/generated/', import.meta.url);
const HEADER =
  '// Generated from the service\'s /api-docs/openapi.json by web/scripts/openapi.mjs: do not edit.\n' +
  '// Regenerate with `npm run openapi:update` while the services run (see web/README.md).\n\n';

/** @typedef {{ name: 'auth' | 'jobs', url: string }} Source */

const PROSE = new Set(['description', 'summary', 'title', 'example']);

/**
 * The document without its prose. Only string values are dropped, so a schema property that is
 * itself named `title` or `description` (an object) stays.
 * @param {unknown} value
 * @returns {unknown}
 */
export function shapesOnly(value) {
  if (Array.isArray(value)) return value.map(shapesOnly);
  if (!value || typeof value !== 'object') return value;
  /** @type {Record<string, unknown>} */
  const out = {};
  for (const [key, item] of Object.entries(value)) {
    if (PROSE.has(key) && typeof item === 'string') continue;
    out[key] = shapesOnly(item);
  }
  return out;
}

/**
 * TypeScript declarations for the OpenAPI document served at `baseUrl`.
 * @param {string} baseUrl
 */
export async function generate(baseUrl) {
  const response = await fetch(`${baseUrl}/api-docs/openapi.json`);
  if (!response.ok) throw new Error(`${baseUrl}/api-docs/openapi.json answered ${response.status}`);
  const document = /** @type {import('openapi-typescript').OpenAPI3} */ (shapesOnly(await response.json()));
  const ast = await openapiTS(document, { emptyObjectsUnknown: true, alphabetize: true });
  return HEADER + astToString(ast);
}

/**
 * Compares (or, with `update`, rewrites) the generated files; returns the names that differ.
 * @param {Source[]} sources
 * @param {{ update?: boolean }} [options]
 */
export async function syncGenerated(sources, options = {}) {
  const changed = [];
  for (const { name, url } of sources) {
    const file = new URL(`${name}.ts`, generatedDir);
    const fresh = await generate(url);
    const committed = await readFile(file, 'utf8').catch(() => '');
    if (fresh !== committed) {
      changed.push(name);
      if (options.update) await writeFile(file, fresh);
    }
  }
  return changed;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [mode, authUrl, jobsUrl] = process.argv.slice(2);
  if ((mode !== 'check' && mode !== 'update') || !authUrl || !jobsUrl) {
    console.error('usage: node scripts/openapi.mjs check|update AUTH_URL JOBS_URL');
    process.exit(2);
  }
  const changed = await syncGenerated(
    [
      { name: 'auth', url: authUrl },
      { name: 'jobs', url: jobsUrl },
    ],
    { update: mode === 'update' },
  );
  if (mode === 'update') {
    console.log(changed.length ? `rewrote src/api/generated/{${changed.join(',')}}.ts` : 'already up to date');
  } else if (changed.length) {
    console.error(`OpenAPI contract changed for: ${changed.join(', ')}. Run the update, then fix the type errors.`);
    process.exit(1);
  }
}
