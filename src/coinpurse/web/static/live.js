// Live balances. Today a light poll (every few seconds, paused while the tab is hidden);
// when the server has an events stream (GET /api/v1/events/stream, server-sent events), this
// is the one place to switch: an EventSource whose messages call check() — the session
// cookie authenticates it, and it is a GET, so no CSRF header is needed.

const POLL_MS = 3000;

export function startLive({ load, onChange }) {
  let last = null;
  let timer = null;
  let stopped = false;
  let running = null;

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
        // A failed poll is retried at the next tick; a signed-out session is handled by api.js.
      } finally {
        running = null;
      }
    })();
    return running;
  }

  function tick() {
    if (stopped) return;
    timer = setTimeout(async () => {
      if (!document.hidden) await check();
      tick();
    }, POLL_MS);
  }

  const onVisible = () => { if (!document.hidden) check(); };
  document.addEventListener('visibilitychange', onVisible);
  check();
  tick();
  return {
    now: check,
    stop() {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
    },
  };
}
