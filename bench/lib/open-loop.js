// An open-loop HTTP load generator on node:http: request i leaves at start + i / rate whether or
// not earlier ones have been answered, and its latency is counted from that scheduled time, so a
// server that falls behind cannot hide its queue by slowing the client down (no coordinated
// omission). A request unanswered `timeoutMs` after its scheduled time is abandoned and counted as
// a timeout, at that time.
import { Agent, request as httpRequest } from 'node:http';

/**
 * Sends `rate` requests per second for `seconds` to `http://127.0.0.1:port`, each made by
 * `makeRequest(i)` → `{ method, path, headers }`. Optional `at: [{ seconds, run }]` callbacks run at
 * those offsets (the outage of the incident benchmark). Resolves once every request has been
 * answered or abandoned, with each request's latency (ms from its scheduled time) and outcome.
 */
export async function openLoop({ port, rate, seconds, makeRequest, timeoutMs = 2000, at = [] }) {
  const total = Math.round(rate * seconds);
  const agent = new Agent({ keepAlive: true, maxSockets: 1024, maxFreeSockets: 1024 });
  const latencies = new Float64Array(total);
  const outcomes = new Uint8Array(total); // 0 pending, 1 ok, 2 error status, 3 socket error, 4 timeout
  let settled = 0;
  let sent = 0;
  let maxLateMs = 0;
  let finish;
  const done = new Promise((resolve) => {
    finish = resolve;
  });
  const start = performance.now() + 20;

  const settle = (i, outcome) => {
    if (outcomes[i] !== 0) return;
    outcomes[i] = outcome;
    latencies[i] = outcome === 4 ? timeoutMs : performance.now() - (start + (i * 1000) / rate);
    settled++;
    if (settled === total) finish();
  };

  const send = (i) => {
    const { method, path, headers } = makeRequest(i);
    const req = httpRequest({ agent, host: '127.0.0.1', port, method, path, headers }, (res) => {
      res.resume();
      res.on('end', () => {
        const late = performance.now() - (start + (i * 1000) / rate);
        if (late > timeoutMs) settle(i, 4);
        else settle(i, res.statusCode >= 200 && res.statusCode < 300 ? 1 : 2);
      });
      res.on('error', () => settle(i, 3));
    });
    req.on('error', () => settle(i, 3));
    req.end();
    return req;
  };

  // Requests unanswered at their deadline are abandoned; checked every 50 ms.
  const inFlight = new Map();
  const reaper = setInterval(() => {
    const now = performance.now();
    for (const [i, req] of inFlight) {
      if (outcomes[i] !== 0) inFlight.delete(i);
      else if (now - (start + (i * 1000) / rate) >= timeoutMs) {
        settle(i, 4);
        inFlight.delete(i);
        req.destroy();
      }
    }
  }, 50);

  const events = [...at].sort((a, b) => a.seconds - b.seconds);
  const tick = () => {
    const now = performance.now();
    while (events.length > 0 && start + events[0].seconds * 1000 <= now) void events.shift().run();
    while (sent < total && start + (sent * 1000) / rate <= now) {
      maxLateMs = Math.max(maxLateMs, now - (start + (sent * 1000) / rate));
      inFlight.set(sent, send(sent));
      sent++;
    }
    if (sent < total) setTimeout(tick, Math.max(0, start + (sent * 1000) / rate - performance.now()));
  };
  setTimeout(tick, 20);
  if (total === 0) finish();
  await done;
  clearInterval(reaper);
  for (const event of events) await event.run();
  agent.destroy();

  const counts = { ok: 0, errorStatus: 0, socketError: 0, timeout: 0 };
  for (const outcome of outcomes) {
    if (outcome === 1) counts.ok++;
    else if (outcome === 2) counts.errorStatus++;
    else if (outcome === 3) counts.socketError++;
    else counts.timeout++;
  }
  return { sent: total, latencies, counts, generatorMaxLateMs: maxLateMs };
}
