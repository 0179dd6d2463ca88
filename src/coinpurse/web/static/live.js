// Live balances from the server's event stream (GET /api/v1/events/stream, server-sent
// events): the session cookie authenticates it, and it is a GET, so no CSRF header is needed.
// Each balance.updated (or reset: the server could not replay what was missed) reloads the
// balances. While the stream is not open (the server restarting, the access cookie expired,
// too many streams) a light poll takes over, which also renews the session through api.js,
// and the stream is opened again.

const POLL_MS = 3000;
const STREAM = '/api/v1/events/stream';

export function startLive({ load, onChange }) {
  let last = null;
  let timer = null;
  let stopped = false;
  let running = null;
  let source = null;

  async function check() {
    if (stopped) return;
    if (running) return running;
    running = (async () => {
      try {
        const data = await load();
        const text = JSON.stringify(data);
        if (text !== last) {
          const before = last === null ? null : JSON.parse(last);
          last = text;
          onChange(data, before);
        }
      } catch {
        // A failed load is retried at the next tick; a signed-out session is handled by api.js.
      } finally {
        running = null;
      }
    })();
    return running;
  }

  function open() {
    if (stopped || typeof EventSource === 'undefined') return;
    source = new EventSource(STREAM);
    source.addEventListener('balance.updated', () => check());
    source.addEventListener('reset', () => check());
    source.onopen = () => check(); // catch up with what changed while it was closed
    source.onerror = () => {
      // CONNECTING: the browser retries by itself; CLOSED: refused (401, 429), reopen later.
      if (source && source.readyState === EventSource.CLOSED) source = null;
    };
  }

  const streaming = () => source !== null && source.readyState === EventSource.OPEN;

  function tick() {
    if (stopped) return;
    timer = setTimeout(async () => {
      if (!document.hidden && !streaming()) {
        await check();
        if (source === null) open();
      }
      tick();
    }, POLL_MS);
  }

  const onVisible = () => { if (!document.hidden) check(); };
  document.addEventListener('visibilitychange', onVisible);
  check();
  open();
  tick();
  return {
    now: check,
    stop() {
      stopped = true;
      clearTimeout(timer);
      if (source) source.close();
      source = null;
      document.removeEventListener('visibilitychange', onVisible);
    },
  };
}
