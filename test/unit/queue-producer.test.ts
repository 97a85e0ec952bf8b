import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import type { WriteFailedEvent } from '../../src/core/activity-events.js';
import { BatchDelivery } from '../../src/delivery/batch.js';
import { createQueueSink } from '../../src/delivery/queue-sink.js';
import { createDelivery } from '../../src/runtime/create-delivery.js';
import { builtActivities } from '../helpers/activity-factory.js';
import { MemoryStore } from '../helpers/memory-sink.js';

// Port 1 on loopback refuses connections: Redis "gone" without any service involved.
const unreachable = loadConfig({
  env: { QUEUE_CONNECTION: 'redis', REDIS_URL: 'redis://127.0.0.1:1', DATABASE_URL: 'sqlite::memory:' },
}).redis;

describe('queue producer with Redis unreachable', () => {
  it('accepts activities at once, reports the failed enqueue and keeps every activity', async () => {
    const sink = createQueueSink({ redis: unreachable, queueName: 'unreachable', tries: 3, batchSize: 100 });
    const delivery = new BatchDelivery(sink, {
      method: 'queue',
      batchSize: 100,
      flushIntervalMs: 10,
      closeTimeoutMs: 300,
    });
    const failures: WriteFailedEvent[] = [];
    delivery.bus.on('writeFailed', (event) => failures.push(event));

    const activities = builtActivities(1000);
    const started = performance.now();
    for (const activity of activities) expect(delivery.deliver(activity)).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(200);

    const deadline = Date.now() + 3000;
    while (failures.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(failures.length).toBeGreaterThan(0);
    expect(failures[0]!.sink).toBe('queue');
    expect(failures[0]!.willRetry).toBe(true);
    expect(failures[0]!.error).toMatchObject({
      code: 'QUEUE_UNAVAILABLE',
      message: expect.stringMatching(/redis:\/\/127\.0\.0\.1:1 is not reachable: .*ECONNREFUSED/),
    });
    expect(delivery.pending()).toBe(1000);

    const closing = performance.now();
    await expect(delivery.close()).rejects.toMatchObject({ details: { unwritten: 1000 } });
    expect(performance.now() - closing).toBeLessThan(2000);
  });

  it('rejects a write at once while disconnected instead of waiting for Redis', async () => {
    const sink = createQueueSink({ redis: unreachable, queueName: 'unreachable', tries: 3, batchSize: 100 });
    const activities = builtActivities(3);
    await expect(sink.write(activities)).rejects.toMatchObject({ code: 'QUEUE_UNAVAILABLE' });
    const started = performance.now();
    await expect(sink.write(activities)).rejects.toMatchObject({ code: 'QUEUE_UNAVAILABLE' });
    expect(performance.now() - started).toBeLessThan(50);
    await sink.close();
  });
});

describe('queue method configuration', () => {
  it('refuses ACTIVITY_LOG_METHOD=queue without QUEUE_CONNECTION=redis, naming the variable', () => {
    const config = loadConfig({
      env: { QUEUE_CONNECTION: 'sync', ACTIVITY_LOG_METHOD: 'queue', DATABASE_URL: 'sqlite::memory:' },
    });
    expect(() => createDelivery(config, new MemoryStore())).toThrow(/QUEUE_CONNECTION=sync .*expected redis/);
  });
});
