import {
  oneOfOption,
  optionsObject,
  positiveInteger,
  positiveIntegerOption,
  withDefault,
} from '../options.js'
import { MEMORY_BROKER_DEFAULTS, resolveHistoryOptions } from './memory.js'

/**
 * When the durable broker calls `fdatasync(2)`, and so what an acknowledged publish survives.
 * See docs/durability.md for the measured cost of each.
 */
export type FsyncPolicy =
  /**
   * Group commit: the events of one turn of the event loop are written with one `write(2)` and
   * made durable with one `fdatasync(2)` before any of them is acknowledged or delivered. An
   * acknowledged event survives a crash of the process, of the OS and a power loss.
   */
  | 'always'
  /**
   * Written to the OS (one `write(2)` per turn of the loop) before it is acknowledged and
   * delivered; the OS writes it to disk when it likes (seconds). An acknowledged event survives a
   * crash or `kill -9` of the process, not a crash of the OS or a power loss: after one of those,
   * the broker cannot know what the OS lost, so it bumps the epoch and every client gets a reset.
   */
  | 'never'

/** Options of `DurableBroker`. Defaults: {@link DURABLE_BROKER_DEFAULTS}. */
export interface DurableBrokerOptions {
  /**
   * The folder of the store (created when missing): the log segments, the epoch, the finished
   * topics. One hub per folder (a lock file says which process holds it).
   */
  readonly dataDir: string
  /**
   * When events are synced to disk, and so what an acknowledged publish survives.
   * @default 'always'
   */
  readonly fsync?: FsyncPolicy
  /**
   * How many events the history keeps (all topics together).
   * @default 10000
   */
  readonly historyMaxEvents?: number
  /**
   * How long an event stays in the history, in ms; `null`: until another bound drops it.
   * @default 3600000
   */
  readonly historyMaxAgeMs?: number | null
  /**
   * How many bytes of events (as stored, headers included) the history keeps; `null`: no bound.
   * The files hold at most this plus one segment.
   * @default 268435456
   */
  readonly historyMaxBytes?: number | null
  /**
   * How long a finished topic is remembered, in ms.
   * @default 3600000
   */
  readonly endedTopicTtlMs?: number
  /**
   * How many finished topics are remembered at most.
   * @default 10000
   */
  readonly maxEndedTopics?: number
  /**
   * How long an idempotency key is remembered, in ms: a publish retried with its key within it
   * returns the first one's id. Keys are kept in the log with their events: after a restart, the
   * keys of the events the history still holds are known again.
   * @default 3600000
   */
  readonly idempotencyWindowMs?: number
  /**
   * How many idempotency keys are remembered at most; the oldest are forgotten first.
   * @default 100000
   */
  readonly maxIdempotencyKeys?: number
  /**
   * Size at which a log segment file is closed and a new one started: the unit in which old
   * events are deleted from disk.
   * @default 8388608
   */
  readonly segmentBytes?: number
}

/** {@link DurableBrokerOptions} with every default applied and every value checked. */
export type ResolvedDurableBrokerOptions = {
  readonly [K in keyof DurableBrokerOptions]-?: Exclude<DurableBrokerOptions[K], undefined>
}

/**
 * The default of every {@link DurableBrokerOptions} field but `dataDir`. The history bounds are
 * the memory broker's, so `--history-*` means the same with either store.
 */
export const DURABLE_BROKER_DEFAULTS: Omit<ResolvedDurableBrokerOptions, 'dataDir'> = Object.freeze(
  {
    fsync: 'always',
    historyMaxEvents: MEMORY_BROKER_DEFAULTS.historyMaxEvents,
    historyMaxAgeMs: MEMORY_BROKER_DEFAULTS.historyMaxAgeMs,
    historyMaxBytes: 256 * 1024 * 1024,
    endedTopicTtlMs: MEMORY_BROKER_DEFAULTS.endedTopicTtlMs,
    maxEndedTopics: MEMORY_BROKER_DEFAULTS.maxEndedTopics,
    idempotencyWindowMs: MEMORY_BROKER_DEFAULTS.idempotencyWindowMs,
    maxIdempotencyKeys: MEMORY_BROKER_DEFAULTS.maxIdempotencyKeys,
    segmentBytes: 8 * 1024 * 1024,
  },
)

/** The fsync policies, in the order docs list them. */
export const FSYNC_POLICIES: readonly FsyncPolicy[] = ['always', 'never']

/**
 * Applies {@link DURABLE_BROKER_DEFAULTS} and checks every field.
 * @throws {RangeError} or {@link TypeError} naming the first bad option.
 */
export function resolveDurableBrokerOptions(
  options: DurableBrokerOptions,
): ResolvedDurableBrokerOptions {
  optionsObject('durable broker', options)
  const defaults = DURABLE_BROKER_DEFAULTS
  if (typeof options.dataDir !== 'string' || options.dataDir === '') {
    throw new TypeError(
      `Expected \`dataDir\` to be a non-empty path, got \`${String(options.dataDir)}\` (${typeof options.dataDir})`,
    )
  }
  return {
    dataDir: options.dataDir,
    fsync: oneOfOption('fsync', withDefault(options.fsync, defaults.fsync), FSYNC_POLICIES),
    // The memory broker's checks (and defaults: DURABLE_BROKER_DEFAULTS derives them), once.
    ...resolveHistoryOptions(options),
    historyMaxBytes: positiveIntegerOption(
      'historyMaxBytes',
      withDefault(options.historyMaxBytes, defaults.historyMaxBytes),
      true,
    ),
    segmentBytes: positiveInteger(
      'segmentBytes',
      withDefault(options.segmentBytes, defaults.segmentBytes),
    ),
  }
}
