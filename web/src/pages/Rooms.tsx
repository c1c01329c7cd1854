import { useState, type FormEvent } from 'react';
import { useAuth } from '../auth/AuthContext';
import { Field } from '../components/Field';
import { Time } from '../components/JobBits';
import type { RoomMessage } from '../live/client';
import { useLiveEvent, useLiveMode } from '../live/hooks';
import { useServices } from '../services';

const ROOM_NAME = /^[A-Za-z0-9:_-]{1,64}$/;

/** Chat rooms over the live connection: join by name, read, send, leave. */
export function Rooms() {
  const { live } = useServices();
  const { user } = useAuth();
  const mode = useLiveMode();
  const [rooms, setRooms] = useState<string[]>(() => live.joinedRooms.filter((r) => r !== 'admin:jobs'));
  const [active, setActive] = useState<string | null>(rooms[0] ?? null);
  const [messages, setMessages] = useState<Record<string, RoomMessage[]>>({});
  const [roomInput, setRoomInput] = useState('');
  const [roomError, setRoomError] = useState<string[]>([]);
  const [text, setText] = useState('');
  const [serverError, setServerError] = useState<string | null>(null);

  useLiveEvent('joined', ({ room }) => {
    setRooms((current) => (current.includes(room) ? current : [...current, room]));
    setActive(room);
  });
  useLiveEvent('left', ({ room }) => {
    setRooms((current) => current.filter((r) => r !== room));
    setActive((current) => (current === room ? null : current));
  });
  useLiveEvent('receiveMessage', (message) =>
    setMessages((current) => ({ ...current, [message.room]: [...(current[message.room] ?? []), message].slice(-200) })),
  );
  useLiveEvent('error', (error) =>
    setServerError(`${error.room ? `${error.room}: ` : ''}${error.message} (${error.code})`),
  );

  function join(event: FormEvent) {
    event.preventDefault();
    setServerError(null);
    const room = roomInput.trim();
    if (!ROOM_NAME.test(room)) {
      setRoomError(['1 to 64 letters, digits, ":", "_" or "-".']);
      return;
    }
    setRoomError([]);
    if (!live.joinRoom(room)) setServerError('Not connected: rooms need the live connection. It reconnects on its own.');
    setRoomInput('');
  }

  function send(event: FormEvent) {
    event.preventDefault();
    if (!active || !text) return;
    setServerError(null);
    if (live.sendMessage(active, text)) setText('');
    else setServerError('Not connected: the message was not sent.');
  }

  const bytes = new TextEncoder().encode(text).length;
  return (
    <div className="stack">
      <h1>Rooms</h1>
      {mode !== 'live' && (
        <div className="alert alert--info" role="status">
          Rooms work over the live connection, which is down; it reconnects on its own.
        </div>
      )}
      {serverError && (
        <div className="alert alert--error" role="alert">
          {serverError}
        </div>
      )}
      <section className="card">
        <form onSubmit={join} className="inline-form" noValidate>
          <Field label="Room name" errors={roomError}>
            {(p) => <input {...p} value={roomInput} onChange={(e) => setRoomInput(e.target.value)} placeholder="e.g. team-ops" />}
          </Field>
          <button type="submit" className="button button--primary">
            Join
          </button>
        </form>
        {rooms.length > 0 && (
          <div className="tabs" role="tablist" aria-label="Joined rooms">
            {rooms.map((room) => (
              <button
                key={room}
                type="button"
                role="tab"
                aria-selected={room === active}
                className={`tab${room === active ? ' tab--active' : ''}`}
                onClick={() => setActive(room)}
              >
                {room}
              </button>
            ))}
          </div>
        )}
      </section>
      {active && (
        <section className="card room" aria-label={`Room ${active}`}>
          <header className="page-head">
            <h2>{active}</h2>
            <button type="button" className="button" onClick={() => live.leaveRoom(active)}>
              Leave
            </button>
          </header>
          <ol className="messages" aria-live="polite">
            {(messages[active] ?? []).map((m, i) => (
              <li key={`${m.sent_at}-${i}`} className={m.from.id === user?.id ? 'message message--mine' : 'message'}>
                <span className="message__from">{m.from.email}</span> <Time value={m.sent_at} />
                <p className="message__text">{m.message}</p>
              </li>
            ))}
          </ol>
          <form onSubmit={send} className="inline-form" noValidate>
            <Field label="Message" hint={`${bytes} of 4096 bytes`}>
              {(p) => <textarea {...p} rows={2} value={text} onChange={(e) => setText(e.target.value)} />}
            </Field>
            <button type="submit" className="button button--primary" disabled={!text}>
              Send
            </button>
          </form>
        </section>
      )}
    </div>
  );
}
