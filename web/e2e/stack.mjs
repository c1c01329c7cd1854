// @ts-check
// The system under test for the browser tests, all real and on free ports: a fresh PostgreSQL
// database, a Redis key prefix of its own, an SMTP capture server, the auth service, the job
// service and a worker (debug builds), and the built dashboard served with a config.json that
// names the two services. `stop()` ends the processes and drops the database and the keys.
//
// Needs TEST_DATABASE_URL (a superuser URL; scripts/test exports it) and the redis-cli and psql
// clients; the Redis server is TEST_REDIS_URL (default redis://127.0.0.1:6379).
import { spawn, execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

const run = promisify(execFile);
export const webDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const repoDir = resolve(webDir, '..');
export const artifactsDir = join(webDir, 'e2e', 'artifacts');

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** @param {string} url @param {string} database */
function withDatabase(url, database) {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/**
 * @typedef {{ to: string[], subject: string, text: string, at: number }} Mail
 */

/** An SMTP server that keeps every message it is given, for the tests to read. */
export class MailCapture {
  /** @type {Mail[]} */
  mails = [];
  /** @type {Set<() => void>} */
  waiters = new Set();
  port = 0;

  async start() {
    this.port = await freePort();
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onData: (stream, session, callback) => {
        simpleParser(stream)
          .then((parsed) => {
            const to = session.envelope.rcptTo.map((r) => r.address.toLowerCase());
            this.mails.push({ to, subject: parsed.subject ?? '', text: parsed.text ?? '', at: Date.now() });
            for (const wake of this.waiters) wake();
            callback();
          })
          .catch((error) => callback(error));
      },
    });
    const server = this.server;
    await new Promise((ok) => server.listen(this.port, '127.0.0.1', () => ok(undefined)));
    return this;
  }

  /**
   * The first mail to `address` (received after `since`) whose text matches `pattern`.
   * @param {string} address @param {RegExp} pattern @param {{ since?: number, timeoutMs?: number }} [options]
   * @returns {Promise<{ mail: Mail, match: RegExpMatchArray }>}
   */
  waitFor(address, pattern, { since = 0, timeoutMs = 20_000 } = {}) {
    const wanted = address.toLowerCase();
    const find = () => {
      for (const mail of this.mails) {
        if (mail.at < since || !mail.to.includes(wanted)) continue;
        const match = mail.text.match(pattern);
        if (match) return { mail, match };
      }
      return null;
    };
    return new Promise((ok, fail) => {
      const check = () => {
        const found = find();
        if (found) {
          this.waiters.delete(check);
          clearTimeout(timer);
          ok(found);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        fail(new Error(`no mail to ${address} matching ${pattern} within ${timeoutMs} ms (got ${this.mails.length} mails)`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  stop() {
    return new Promise((ok) => (this.server ? this.server.close(() => ok(undefined)) : ok(undefined)));
  }
}

/** @param {string} url @param {number} timeoutMs @param {import("node:child_process").ChildProcess} child @param {string} name */
async function waitReady(url, timeoutMs, child, name) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode} during start-up (log: e2e/artifacts/logs/${name}.log)`);
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms (log: e2e/artifacts/logs/${name}.log)`);
}

/**
 * Starts everything. The dashboard's origin is http://localhost:<port>, and config.json names
 * the services as http://localhost:<port> too: the same site as the app, so the browser sends
 * the services' SameSite cookies.
 */
export async function startStack() {
  const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const binDir = process.env.TV_BIN_DIR ?? join(process.env.CARGO_TARGET_DIR ?? join(repoDir, 'target'), 'debug');
  const dbName = `tv_e2e_${randomUUID().replaceAll('-', '')}`;
  const redisPrefix = `e2e:${randomUUID().replaceAll('-', '')}:`;
  const logDir = join(artifactsDir, 'logs');
  mkdirSync(logDir, { recursive: true });

  /** @type {{ name: string, child: import('node:child_process').ChildProcess, args: string[], env: Record<string, string> }[]} */
  const children = [];
  const mail = await new MailCapture().start();
  await run('psql', ['-w', '-X', '-q', '-d', adminUrl, '-c', `CREATE DATABASE ${dbName}`]);
  const databaseUrl = withDatabase(adminUrl, dbName);

  const [authPort, jobsPort, workerPort, appPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const appUrl = `http://localhost:${appPort}`;
  const authUrl = `http://localhost:${authPort}`;
  const jobsUrl = `http://localhost:${jobsPort}`;

  const common = {
    PATH: process.env.PATH ?? '',
    RUST_LOG: process.env.TEST_CHILD_LOG ?? 'warn',
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: redisPrefix,
    SMTP_URL: `smtp://127.0.0.1:${mail.port}`,
    FRONTEND_URL: appUrl,
    CORS_ORIGINS: appUrl,
    AUTH_URL: `http://127.0.0.1:${authPort}`,
    LOG_FORMAT: 'pretty',
  };
  /** @param {string} name @param {string[]} args @param {Record<string, string>} env */
  const startProcess = (name, args, env) => {
    const log = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
    const child = spawn(args[0] ?? '', args.slice(1), { env: { ...common, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    const entry = children.find((c) => c.name === name);
    if (entry) entry.child = child;
    else children.push({ name, child, args, env });
    return child;
  };
  /** SIGTERM, then SIGKILL after 10 s. @param {import('node:child_process').ChildProcess} child */
  const stopChild = (child) =>
    new Promise((ok) => {
      if (child.exitCode !== null || child.signalCode !== null) return ok(undefined);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => {
        clearTimeout(timer);
        ok(undefined);
      });
      child.kill('SIGTERM');
    });

  const stack = {
    appUrl,
    authUrl,
    jobsUrl,
    mail,
    databaseUrl,
    /** Makes an existing user an admin (the real command). @param {string} email */
    async grantAdmin(email) {
      await run(join(binDir, 'auth-service'), ['grant-admin', email], { env: { ...common } });
    },
    /**
     * Stops the job service (its WebSockets close), runs `whileDown`, and starts it again on the
     * same port.
     * @param {() => Promise<void>} [whileDown]
     */
    async restartJobService(whileDown) {
      const entry = children.find((c) => c.name === 'job-service');
      if (!entry) throw new Error('job-service is not running');
      await stopChild(entry.child);
      if (whileDown) await whileDown();
      const child = startProcess('job-service', entry.args, entry.env);
      await waitReady(`http://127.0.0.1:${jobsPort}/readyz`, 60_000, child, 'job-service');
    },
    async stop() {
      await Promise.all(children.map(({ child }) => stopChild(child)));
      await mail.stop();
      await run('psql', ['-w', '-X', '-q', '-d', adminUrl, '-c', `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`]).catch(
        (e) => console.error(`e2e: could not drop ${dbName}: ${e.message}`),
      );
      const { stdout } = await run('redis-cli', ['-u', redisUrl, '--scan', '--pattern', `${redisPrefix}*`]).catch(() => ({
        stdout: '',
      }));
      const keys = stdout.split('\n').filter(Boolean);
      for (let i = 0; i < keys.length; i += 500) {
        await run('redis-cli', ['-u', redisUrl, 'DEL', ...keys.slice(i, i + 500)]).catch(() => undefined);
      }
    },
  };

  try {
    const auth = startProcess('auth-service', [join(binDir, 'auth-service')], {
      AUTH_ADDR: `127.0.0.1:${authPort}`,
      BCRYPT_COST: '4',
      AUTH_RATE_LIMIT_PER_MINUTE: '10000',
    });
    await waitReady(`http://127.0.0.1:${authPort}/readyz`, 60_000, auth, 'auth-service');
    const jobs = startProcess('job-service', [join(binDir, 'job-service')], { JOBS_ADDR: `127.0.0.1:${jobsPort}` });
    const worker = startProcess('worker', [join(binDir, 'worker')], {
      WORKER_ADDR: `127.0.0.1:${workerPort}`,
      JOB_RETRY_BASE_MS: '300',
      JOB_RETRY_MAX_MS: '2000',
    });
    const configFile = join(artifactsDir, 'config.json');
    writeFileSync(configFile, JSON.stringify({ authUrl, jobsUrl }, null, 2));
    const app = startProcess('dashboard', [process.execPath, join(webDir, 'scripts', 'serve.mjs'), '--dir', join(webDir, 'dist'), '--listen', `127.0.0.1:${appPort}`, '--config', configFile], {});
    await Promise.all([
      waitReady(`http://127.0.0.1:${jobsPort}/readyz`, 60_000, jobs, 'job-service'),
      waitReady(`http://127.0.0.1:${workerPort}/readyz`, 60_000, worker, 'worker'),
      waitReady(`http://127.0.0.1:${appPort}/config.json`, 30_000, app, 'dashboard'),
    ]);
  } catch (error) {
    await stack.stop();
    throw error;
  }
  return stack;
}
