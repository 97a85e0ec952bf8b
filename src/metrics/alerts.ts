import { hostname } from 'node:os';
import type { RedisClient } from '../delivery/redis-connection.js';
import type { PerformanceData } from './snapshot.js';

/** The alert rules. */
export type AlertRule =
  | 'error_rate'
  | 'queue_size'
  | 'breaker_open'
  | 'spool_drop'
  | 'lag_p99'
  | 'no_worker'
  | 'verify_failed'
  | 'checkpoint_behind';

export const ALERT_RULES: readonly AlertRule[] = Object.freeze([
  'error_rate',
  'queue_size',
  'breaker_open',
  'spool_drop',
  'lag_p99',
  'no_worker',
  'verify_failed',
  'checkpoint_behind',
]);

/** Thresholds and delivery of alerts (from `ACTIVITY_LOG_ALERT_*`). */
export interface AlertSettings {
  /** `ACTIVITY_LOG_ALERT_WEBHOOK`: where firing and resolved alerts are POSTed; null logs only. */
  readonly webhookUrl: string | null;
  /** `ACTIVITY_LOG_ALERT_ERROR_RATE`, percent. */
  readonly errorRatePercent: number;
  /** `ACTIVITY_LOG_ALERT_QUEUE_SIZE`, activities. */
  readonly queueSize: number;
  /** `ACTIVITY_LOG_ALERT_BREAKER_OPEN_SECONDS`. */
  readonly breakerOpenSeconds: number;
  /** `ACTIVITY_LOG_ALERT_LAG_P99_MS`. */
  readonly lagP99Ms: number;
  /** `ACTIVITY_LOG_ALERT_COOLDOWN_SECONDS`: a firing rule is notified again at most this often. */
  readonly cooldownSeconds: number;
  /**
   * The newest seals may go this long without a checkpoint (twice
   * `ACTIVITY_LOG_CHECKPOINT_INTERVAL_S`). Optional for settings made before the rule existed.
   */
  readonly checkpointBehindSeconds?: number;
}

/** What one rule says about one snapshot. */
export interface RuleResult {
  readonly rule: AlertRule;
  readonly firing: boolean;
  readonly value: number;
  readonly threshold: number;
  readonly message: string;
}

/** The JSON POSTed to the webhook. `text` makes it a valid Slack (and Mattermost, Teams) message. */
export interface AlertPayload {
  readonly text: string;
  readonly rule: AlertRule;
  readonly status: 'firing' | 'resolved';
  /** True when the rule was already notified and is still firing after the cooldown. */
  readonly repeat: boolean;
  readonly message: string;
  readonly value: number;
  readonly threshold: number;
  readonly queue: string;
  readonly host: string;
  /** ISO-8601. */
  readonly at: string;
}

/**
 * Applies every rule to a snapshot. `droppedSinceLastCheck` makes `spool_drop` fire on any new
 * drop, at once; `no_worker` only means something with the queue.
 */
export function evaluateRules(
  data: PerformanceData,
  settings: AlertSettings,
  droppedSinceLastCheck: number,
): RuleResult[] {
  const openSeconds = Math.max(
    0,
    ...Object.values(data.breakers).map((breaker) =>
      breaker.state === 'closed' ? 0 : (breaker.open_for_seconds ?? 0),
    ),
  );
  const openNames = Object.entries(data.breakers)
    .filter(
      ([, breaker]) =>
        breaker.state !== 'closed' && (breaker.open_for_seconds ?? 0) >= settings.breakerOpenSeconds,
    )
    .map(([name]) => name);
  const lagP99 = data.lag_ms.p99 ?? 0;
  const waitingJobs = data.method === 'queue' ? data.pending_jobs : 0;
  const workers = data.workers.length;
  const verify = data.integrity?.verify ?? null;
  const verifyFailed = verify?.status === 'failed';
  const behindSeconds = data.integrity?.checkpoint_behind_seconds ?? 0;
  const behindThreshold = settings.checkpointBehindSeconds ?? Number.POSITIVE_INFINITY;
  return [
    {
      rule: 'error_rate',
      firing: data.error_rate > settings.errorRatePercent,
      value: data.error_rate,
      threshold: settings.errorRatePercent,
      message: `error rate ${data.error_rate}% of write attempts in the last 5 minutes (threshold ${settings.errorRatePercent}%)`,
    },
    {
      rule: 'queue_size',
      firing: data.queue_size > settings.queueSize,
      value: data.queue_size,
      threshold: settings.queueSize,
      message: `${data.queue_size} activities accepted and not yet stored (threshold ${settings.queueSize})`,
    },
    {
      rule: 'breaker_open',
      firing: openNames.length > 0,
      value: openSeconds,
      threshold: settings.breakerOpenSeconds,
      message:
        openNames.length > 0
          ? `circuit breaker ${openNames.join(', ')} open for ${openSeconds} s (threshold ${settings.breakerOpenSeconds} s); activities go to the spool`
          : 'every circuit breaker is closed',
    },
    {
      rule: 'spool_drop',
      firing: droppedSinceLastCheck > 0,
      value: droppedSinceLastCheck,
      threshold: 0,
      message: `${droppedSinceLastCheck} activities dropped because the spool is full (${data.dropped_total} in total); raise ACTIVITY_LOG_SPOOL_MAX_MB or bring the store back`,
    },
    {
      rule: 'lag_p99',
      firing: lagP99 > settings.lagP99Ms,
      value: lagP99,
      threshold: settings.lagP99Ms,
      message: `99th percentile lag from log() to the stored row is ${lagP99} ms (threshold ${settings.lagP99Ms} ms)`,
    },
    {
      rule: 'no_worker',
      firing: waitingJobs > 0 && workers === 0,
      value: waitingJobs,
      threshold: 0,
      message: `${waitingJobs} queue jobs wait and no worker is alive: start \`activity-log work\``,
    },
    {
      rule: 'verify_failed',
      firing: verifyFailed,
      value: verify?.problems ?? 0,
      threshold: 0,
      message: verifyFailed
        ? `seal chain verification found ${verify.problems} ${verify.problems === 1 ? 'problem' : 'problems'} at ${verify.at}, first: ${verify.first_problem}; run \`activity-log verify --json\` for the full report`
        : 'the last seal chain verification found the chain intact',
    },
    {
      rule: 'checkpoint_behind',
      firing: behindSeconds > behindThreshold,
      value: behindSeconds,
      threshold: Number.isFinite(behindThreshold) ? behindThreshold : 0,
      message: `the newest seals have gone ${behindSeconds} s without a signed checkpoint (threshold ${behindThreshold} s, twice ACTIVITY_LOG_CHECKPOINT_INTERVAL_S): check the checkpoint warnings of serve, or run \`activity-log checkpoint\``,
    },
  ];
}

/** What to send after a rule's state was updated. */
export type AlertAction = 'fire' | 'renotify' | 'resolve' | 'none';

/**
 * Where the state of each rule lives, so that several processes evaluating the same rules send
 * one notification per incident: Redis with the queue, memory otherwise.
 */
export interface AlertStateStore {
  /** Atomically records the rule's new condition and says whether this caller must notify. */
  transition(rule: AlertRule, firing: boolean, nowMs: number, cooldownMs: number): Promise<AlertAction>;
}

/** Per-process alert state. */
export class MemoryAlertState implements AlertStateStore {
  readonly #rules = new Map<AlertRule, { firing: boolean; notifiedAtMs: number }>();

  /** The rule fired here and has not been resolved here. */
  isFiring(rule: AlertRule): boolean {
    return this.#rules.get(rule)?.firing === true;
  }

  async transition(
    rule: AlertRule,
    firing: boolean,
    nowMs: number,
    cooldownMs: number,
  ): Promise<AlertAction> {
    const state = this.#rules.get(rule) ?? { firing: false, notifiedAtMs: Number.NEGATIVE_INFINITY };
    const action = nextAction(state, firing, nowMs, cooldownMs);
    if (action === 'fire' || action === 'renotify') state.notifiedAtMs = nowMs;
    if (action === 'resolve') state.firing = false;
    if (firing) state.firing = true;
    this.#rules.set(rule, state);
    return action;
  }
}

function nextAction(
  state: { firing: boolean; notifiedAtMs: number },
  firing: boolean,
  nowMs: number,
  cooldownMs: number,
): AlertAction {
  const cooled = nowMs - state.notifiedAtMs >= cooldownMs;
  if (firing) {
    if (!state.firing) return cooled ? 'fire' : 'none';
    return cooled ? 'renotify' : 'none';
  }
  return state.firing ? 'resolve' : 'none';
}

/**
 * The same rules as {@link nextAction}, run inside Redis so that only one of the processes
 * evaluating at the same moment gets `fire`. The state expires a day after its last change.
 */
const TRANSITION_SCRIPT = `
local firing = redis.call('HGET', KEYS[1], 'firing') == '1'
local notified = tonumber(redis.call('HGET', KEYS[1], 'notified_at_ms') or '-1e18')
local now = tonumber(ARGV[2])
local cooled = now - notified >= tonumber(ARGV[3])
local action = 'none'
if ARGV[1] == '1' then
  if cooled then
    if firing then action = 'renotify' else action = 'fire' end
    redis.call('HSET', KEYS[1], 'notified_at_ms', ARGV[2])
  end
  redis.call('HSET', KEYS[1], 'firing', '1')
elseif firing then
  action = 'resolve'
  redis.call('HSET', KEYS[1], 'firing', '0')
end
redis.call('EXPIRE', KEYS[1], 86400)
return action
`;

/** Alert state shared through Redis by every process of one queue. */
export class RedisAlertState implements AlertStateStore {
  readonly #redis: RedisClient;
  readonly #key: (rule: AlertRule) => string;

  constructor(redis: RedisClient, keyOf: (rule: AlertRule) => string) {
    this.#redis = redis;
    this.#key = keyOf;
  }

  async transition(
    rule: AlertRule,
    firing: boolean,
    nowMs: number,
    cooldownMs: number,
  ): Promise<AlertAction> {
    const action = await this.#redis.eval(
      TRANSITION_SCRIPT,
      1,
      this.#key(rule),
      firing ? '1' : '0',
      String(nowMs),
      String(cooldownMs),
    );
    return action as AlertAction;
  }
}

export interface AlertNotifierOptions {
  readonly settings: AlertSettings;
  readonly state: AlertStateStore;
  /** Named in every payload. */
  readonly queueName: string;
  /** One line per notification (default: stderr). */
  readonly log?: (line: string) => void;
  /** Longest wait for the webhook (default 5000 ms). */
  readonly webhookTimeoutMs?: number;
  readonly nowMs?: () => number;
}

/**
 * Applies the rules to each snapshot it is given, and for every rule that starts firing, keeps
 * firing past the cooldown, or stops firing, logs a line and POSTs an {@link AlertPayload} to the
 * webhook. A webhook that fails or hangs is logged and never stops the evaluation.
 *
 * @example
 * const alerts = new AlertNotifier({ settings, state: new MemoryAlertState(), queueName: 'activity-logs' });
 * await alerts.check((await monitoring.snapshot()).data);
 */
export class AlertNotifier {
  readonly #options: AlertNotifierOptions;
  readonly #log: (line: string) => void;
  readonly #nowMs: () => number;
  #lastDropped: number | null = null;
  #lastDropSource: PerformanceData['source'] | null = null;
  #lastDropAtMs = Number.NEGATIVE_INFINITY;
  /** Decides for this process alone while the shared state (Redis) cannot be reached. */
  readonly #fallback = new MemoryAlertState();
  #sharedStateDown = false;

  constructor(options: AlertNotifierOptions) {
    this.#options = options;
    this.#log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.#nowMs = options.nowMs ?? Date.now;
  }

  /** Evaluates the rules against one snapshot; resolves with the notifications it sent. */
  async check(data: PerformanceData): Promise<AlertPayload[]> {
    const nowMs = this.#nowMs();
    const { settings } = this.#options;
    const cooldownMs = settings.cooldownSeconds * 1000;
    // The first look only learns the count; a drop after it fires at once and keeps the rule firing
    // for one cooldown, after which it resolves unless more were dropped.
    // Cluster-wide and this-process-only totals are not comparable: a change of source (Redis
    // away, then back) starts counting afresh instead of reading the difference as drops.
    if (data.source !== this.#lastDropSource) this.#lastDropped = null;
    this.#lastDropSource = data.source;
    const dropped = this.#lastDropped === null ? 0 : Math.max(0, data.dropped_total - this.#lastDropped);
    this.#lastDropped = data.dropped_total;
    if (dropped > 0) this.#lastDropAtMs = nowMs;
    const recentDrop = nowMs - this.#lastDropAtMs < cooldownMs;
    const sent: AlertPayload[] = [];
    for (const result of evaluateRules(data, settings, dropped)) {
      const firing = result.rule === 'spool_drop' ? dropped > 0 || recentDrop : result.firing;
      const action = await this.#transition(result.rule, firing, nowMs, cooldownMs);
      if (action === 'none') continue;
      const payload = this.#payload(result, action, nowMs);
      sent.push(payload);
      this.#log(`activity-log: alert ${payload.status}: ${payload.text}`);
      await this.#post(payload);
    }
    return sent;
  }

  /**
   * The shared state decides; while it cannot be reached (Redis down, often the very incident),
   * this process decides alone, so alerts still go out, one per process. An alert raised that way
   * is resolved that way too once the shared state is back.
   */
  async #transition(
    rule: AlertRule,
    firing: boolean,
    nowMs: number,
    cooldownMs: number,
  ): Promise<AlertAction> {
    let action: AlertAction;
    try {
      action = await this.#options.state.transition(rule, firing, nowMs, cooldownMs);
    } catch (error) {
      if (!this.#sharedStateDown) {
        this.#sharedStateDown = true;
        this.#log(
          `activity-log: alert state is unreachable (${error instanceof Error ? error.message : String(error)}); this process decides alerts alone until it is back`,
        );
      }
      return this.#fallback.transition(rule, firing, nowMs, cooldownMs);
    }
    this.#sharedStateDown = false;
    if (action === 'none' && !firing && this.#fallback.isFiring(rule)) {
      return this.#fallback.transition(rule, firing, nowMs, cooldownMs);
    }
    return action;
  }

  #payload(result: RuleResult, action: Exclude<AlertAction, 'none'>, nowMs: number): AlertPayload {
    const status = action === 'resolve' ? 'resolved' : 'firing';
    const text =
      status === 'resolved'
        ? `[activity-log] RESOLVED ${result.rule} on queue ${this.#options.queueName}`
        : `[activity-log] ${action === 'renotify' ? 'STILL FIRING' : 'FIRING'} ${result.rule}: ${result.message}`;
    return {
      text,
      rule: result.rule,
      status,
      repeat: action === 'renotify',
      message: result.message,
      value: result.value,
      threshold: result.threshold,
      queue: this.#options.queueName,
      host: hostname(),
      at: new Date(nowMs).toISOString(),
    };
  }

  async #post(payload: AlertPayload): Promise<void> {
    const url = this.#options.settings.webhookUrl;
    if (url === null) return;
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(this.#options.webhookTimeoutMs ?? 5000),
      });
      await response.body?.cancel();
      if (!response.ok)
        this.#log(`activity-log: alert webhook answered ${response.status} for ${payload.rule}`);
    } catch (error) {
      this.#log(
        `activity-log: alert webhook failed for ${payload.rule}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
}
