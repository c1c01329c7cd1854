// @ts-check
// Serves the built dashboard (dist/) the way a static web server in production does: files
// with long-lived caching for the hashed assets, index.html for every app route, and
// /config.json — the two service URLs — from --config when given (one build, any environment).
//
//   node scripts/serve.mjs [--dir dist] [--listen 127.0.0.1:5173] [--config path/to/config.json]
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import sirv from 'sirv';

const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: new URL('../dist', import.meta.url).pathname },
    listen: { type: 'string', default: '127.0.0.1:5173' },
    config: { type: 'string' },
  },
});

const dir = resolve(/** @type {string} */ (values.dir));
const listen = /** @type {string} */ (values.listen);
const colon = listen.lastIndexOf(':');
const host = listen.slice(0, colon).replace(/^\[|\]$/g, '') || '127.0.0.1';
const port = Number(listen.slice(colon + 1));
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`serve: --listen ${listen}: expected HOST:PORT`);
  process.exit(2);
}
/** @type {Buffer | null} */
let config = null;
if (values.config) {
  try {
    config = readFileSync(values.config);
    JSON.parse(config.toString('utf8'));
  } catch (error) {
    console.error(`serve: --config ${values.config}: ${/** @type {Error} */ (error).message}`);
    process.exit(2);
  }
}
try {
  readFileSync(resolve(dir, 'index.html'));
} catch {
  console.error(`serve: ${dir}/index.html not found: build the app first (npm run build)`);
  process.exit(2);
}

const files = sirv(dir, {
  single: true, // unknown paths get index.html: the app's router handles them
  etag: true,
  setHeaders(res, pathname) {
    if (pathname.startsWith('/assets/')) res.setHeader('Cache-Control', 'public, max-age=31536000, immutable');
    else res.setHeader('Cache-Control', 'no-cache');
  },
});

const server = createServer((req, res) => {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer'); // reset links carry a token in their query
  if (config && req.url?.split('?')[0] === '/config.json') {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache' });
    res.end(config);
    return;
  }
  files(req, res, () => {
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found');
  });
});

server.on('error', (error) => {
  console.error(`serve: cannot listen on ${listen}: ${error.message}`);
  process.exit(1);
});
server.listen(port, host, () => {
  const address = server.address();
  const actual = typeof address === 'object' && address ? address.port : port;
  console.log(`serve: dashboard on http://${host.includes(':') ? `[${host}]` : host}:${actual}/ (files from ${dir})`);
});
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.on(signal, () => server.close(() => process.exit(0)).closeAllConnections());
}
