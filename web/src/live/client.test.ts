import { describe, expect, it, vi } from 'vitest';
import { backoffDelay, LiveClient, socketUrl, type SocketLike } from './client';

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: unknown[] = [];
  onopen: SocketLike['onopen'] = null;
  onclose: SocketLike['onclose'] = null;
  onmessage: SocketLike['onmessage'] = null;
  onerror: SocketLike['onerror'] = null;
  constructor(readonly url: string) {}
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  serverClose(code: number) {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }
  receive(frame: unknown) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
}

function setup(renew?: () => Promise<boolean>) {
  const clock = { now: 0 };
  const sockets: FakeSocket[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const client = new LiveClient('ws://jobs.test/api/ws', {
    connect: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    renewSession: renew,
    random: () => 1,
    baseDelayMs: 100,
    maxDelayMs: 1000,
    stableAfterMs: 5000,
    now: () => clock.now,
    setTimer: (fn, ms) => {
      timers.push({ fn, ms });
      return timers.length;
    },
    clearTimer: () => undefined,
  });
  const last = () => sockets[sockets.length - 1] as FakeSocket;
  const fire = () => timers.shift()?.fn();
  return { client, sockets, timers, last, fire, clock };
}

describe('LiveClient', () => {
  it('builds the socket URL from the job service URL', () => {
    expect(socketUrl('http://localhost:8082')).toBe('ws://localhost:8082/api/ws');
    expect(socketUrl('https://jobs.example.com')).toBe('wss://jobs.example.com/api/ws');
  });

  it('backs off exponentially up to the cap', () => {
    const delays = [0, 1, 2, 3, 4, 10].map((n) => backoffDelay(n, 100, 1000, () => 1));
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay(2, 100, 1000, () => 0)).toBe(200); // jitter: half to full
  });

  it('goes live on open, falls back to polling on close, reconnects with growing delays', () => {
    const { client, last, timers, fire } = setup();
    const modes: string[] = [];
    client.onMode((m) => modes.push(m));
    client.start();
    expect(client.mode).toBe('connecting');
    last().open();
    expect(client.mode).toBe('live');
    last().serverClose(1006);
    expect(client.mode).toBe('polling');
    expect(timers.map((t) => t.ms)).toEqual([100]);
    fire();
    last().serverClose(1006); // refused again
    expect(timers.map((t) => t.ms)).toEqual([200]);
    fire();
    last().open();
    expect(modes).toEqual(['connecting', 'live', 'polling', 'live']);
  });

  it('starts the backoff again only after a socket stayed open a while', () => {
    const { client, last, timers, fire, clock } = setup();
    client.start();
    last().serverClose(1006);
    fire();
    last().open(); // accepted, then dropped at once: keep backing off
    last().serverClose(1011);
    expect(timers.map((t) => t.ms)).toEqual([200]);
    fire();
    last().open();
    clock.now += 6000; // a healthy connection
    last().serverClose(1001);
    expect(timers.map((t) => t.ms)).toEqual([100]);
  });

  it('tells listeners to re-read after a reconnect, and joins its rooms again', () => {
    const { client, last, fire } = setup();
    const reread = vi.fn();
    client.on('reconnected', reread);
    client.start();
    last().open();
    client.joinRoom('team');
    expect(last().sent).toEqual([{ event: 'joinRoom', data: { room: 'team' } }]);
    last().serverClose(1001);
    fire();
    last().open();
    expect(reread).toHaveBeenCalledTimes(2);
    expect(last().sent).toEqual([{ event: 'joinRoom', data: { room: 'team' } }]);
  });

  it('dispatches server events and ignores malformed frames', () => {
    const { client, last } = setup();
    const jobs = vi.fn();
    const errors = vi.fn();
    client.on('jobUpdated', jobs);
    client.on('error', errors);
    client.start();
    last().open();
    last().receive({ event: 'jobUpdated', data: { job: { id: 'j1' } } });
    last().onmessage?.({ data: 'not json' });
    last().receive({ event: 'error', data: { code: 'message_too_large', message: 'too big' } });
    expect(jobs).toHaveBeenCalledWith({ job: { id: 'j1' } });
    expect(errors).toHaveBeenCalledWith({ code: 'message_too_large', message: 'too big' });
  });

  it('a refused room is not joined again after a reconnect', () => {
    const { client, last, fire } = setup();
    client.start();
    last().open();
    client.joinRoom('admin:jobs');
    last().receive({ event: 'error', data: { code: 'forbidden', message: 'no' } });
    expect(client.joinedRooms).toEqual([]);
    last().serverClose(1006);
    fire();
    last().open();
    expect(last().sent).toEqual([]);
  });

  it('forgets exactly the room an error names', () => {
    const { client, last } = setup();
    client.start();
    last().open();
    client.joinRoom('lobby');
    last().receive({ event: 'joined', data: { room: 'lobby' } });
    client.joinRoom('admin:jobs');
    client.joinRoom('job:nope');
    last().receive({ event: 'error', data: { code: 'not_found', message: 'no such job', room: 'job:nope' } });
    expect(client.joinedRooms).toEqual(['lobby', 'admin:jobs']);
    last().receive({ event: 'error', data: { code: 'rate_limited', message: 'slow down' } });
    expect(client.joinedRooms).toEqual(['lobby', 'admin:jobs']);
  });

  it('renews the session when the server ends it (4xxx) and reconnects at once', async () => {
    const renew = vi.fn(async () => true);
    const { client, last, sockets, timers } = setup(renew);
    client.start();
    last().open();
    last().serverClose(4001);
    await vi.waitFor(() => expect(sockets).toHaveLength(2));
    expect(renew).toHaveBeenCalledTimes(1);
    expect(timers).toHaveLength(0);
  });

  it('sends nothing and reconnects no more once stopped', () => {
    const { client, last, timers } = setup();
    client.start();
    last().open();
    client.stop();
    expect(client.mode).toBe('polling');
    expect(client.sendMessage('team', 'hi')).toBe(false);
    expect(timers).toHaveLength(0);
  });
});
