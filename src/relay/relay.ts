/**
 * Relays a token stream (an LLM answer, a job's output) onto a finite hub topic: every token is
 * one event, then exactly one final event (`done` or `error`) closes the topic, however the source
 * ends (finished, upstream error, timeout, abort). Every viewer subscribed to the topic sees the
 * same generation: one upstream request fans out to all of them.
 */
import { streamChatCompletion, type ChatCompletionStreamOptions } from '../client/openai.js'
import { ErrorCodes, isSseError } from '../errors.js'
import type { PublishInput, PublishResult } from '../hub/types.js'

/** The part of a hub the relay needs (a `Hub`, or anything that publishes like one). */
export interface RelayHub {
  publish(input: PublishInput): Promise<PublishResult>
}

/** How a relay ended. */
export type RelayOutcome = 'done' | 'error' | 'timeout' | 'aborted'

/**
 * Why a relay ended with an `error` event: the upstream failed (`upstream`), the time ran out
 * (`timeout`), someone stopped it (`aborted`), or the source sent more than `maxTokens`
 * (`max-tokens`).
 */
export type RelayErrorReason = 'upstream' | 'timeout' | 'aborted' | 'max-tokens'

/** Options of {@link relay}. */
export interface RelayOptions {
  /** The finite topic the tokens go to; it is closed by the final event. */
  readonly topic: string
  /**
   * The tokens: an async iterable of strings, or an OpenAI-compatible streaming `Response`
   * (`text/event-stream` of chat completion chunks ending with `data: [DONE]`).
   */
  readonly source: AsyncIterable<string> | Response
  /** Event name of each token. @default 'token' */
  readonly event?: string
  /** Ends the relay with outcome `timeout` after this long. `null`: no limit. @default 120000 */
  readonly timeoutMs?: number | null
  /** Aborting it ends the relay with outcome `aborted` (and cancels the upstream). */
  readonly signal?: AbortSignal
  /** Most tokens relayed; the relay ends with `error` past it (a runaway guard). @default 100000 */
  readonly maxTokens?: number
  /**
   * The idempotency key of the final event. Where more than one party may end the topic (the
   * hub's relays: another node ends a generation whose node went silent), they all use this key,
   * so exactly one final event is published; when another party's came first, the relay's own
   * is not published and {@link RelayResult.endedElsewhere} is set.
   */
  readonly finalIdempotencyKey?: string
}

/** What {@link relay} resolves with. */
export interface RelayResult {
  readonly outcome: RelayOutcome
  /** Tokens published. */
  readonly tokens: number
  /** Why it ended, for outcomes other than `done`. */
  readonly reason?: RelayErrorReason
  /** The error message, for outcomes other than `done`. */
  readonly message?: string
  /** Another party published the topic's final event first (see `finalIdempotencyKey`). */
  readonly endedElsewhere?: true
}

/**
 * The `data` of the final event: `done` carries `{ outcome: 'done', tokens }`, `error`
 * `{ outcome, reason, tokens, message }`.
 */
export interface RelayFinalData {
  readonly outcome: RelayOutcome
  readonly tokens: number
  readonly reason?: RelayErrorReason
  readonly message?: string
}

/** Yields each chunk's `choices[0].delta.content` (non-empty) of an OpenAI-compatible stream. */
export async function* chatCompletionTokens(
  options: ChatCompletionStreamOptions,
): AsyncGenerator<string, void, undefined> {
  for await (const chunk of streamChatCompletion(options)) {
    const content = chunk.choices[0]?.delta.content
    if (typeof content === 'string' && content !== '') yield content
  }
}

function responseTokens(response: Response, signal: AbortSignal): AsyncIterable<string> {
  // streamChatCompletion does the parsing, error shapes and `[DONE]`; the request is already made.
  return chatCompletionTokens({
    url: 'http://relay.invalid/',
    body: {},
    fetch: () => Promise.resolve(response),
    signal,
  })
}

function checkOptions(options: RelayOptions): void {
  const { timeoutMs, maxTokens } = options
  if (typeof options.topic !== 'string' || options.topic === '') {
    throw new TypeError(`Expected \`topic\` to be a non-empty string, got ${String(options.topic)}`)
  }
  if (timeoutMs !== undefined && timeoutMs !== null && !(timeoutMs > 0 && isFinite(timeoutMs))) {
    throw new RangeError(
      `Expected \`timeoutMs\` to be a positive finite number or null, got \`${String(timeoutMs)}\``,
    )
  }
  if (maxTokens !== undefined && !(Number.isInteger(maxTokens) && maxTokens > 0)) {
    throw new RangeError(`Expected \`maxTokens\` to be a positive integer, got \`${maxTokens}\``)
  }
}

/**
 * Publishes each token of `source` as an event on `topic`, then one final event that closes the
 * topic: `done` (data `{ outcome: 'done', tokens }`) when the source finished, or `error` (data
 * `{ outcome, tokens, message }`) on an upstream error, the timeout or an abort. Never rejects
 * for the source's failures; rejects only when the hub itself refuses the final publish.
 *
 * @example
 * ```ts
 * const upstream = await fetch(llmUrl, { method: 'POST', body: JSON.stringify({ ...req, stream: true }) })
 * await relay(hub, { topic: `chat/${id}`, source: upstream, timeoutMs: 60_000, signal })
 * ```
 */
export async function relay(hub: RelayHub, options: RelayOptions): Promise<RelayResult> {
  checkOptions(options)
  const { topic } = options
  const event = options.event ?? 'token'
  const maxTokens = options.maxTokens ?? 100_000
  const timeoutMs = options.timeoutMs === undefined ? 120_000 : options.timeoutMs
  const stop = new AbortController()
  let stopped: { outcome: RelayOutcome; reason: RelayErrorReason; message: string } | undefined
  const halt = (outcome: RelayOutcome, reason: RelayErrorReason, message: string): void => {
    stopped ??= { outcome, reason, message }
    stop.abort()
  }
  // An abort's reason, when it is an Error, says who stopped it (e.g. the hub shutting down).
  const onAbort = (): void => {
    const why: unknown = options.signal?.reason
    halt(
      'aborted',
      'aborted',
      why instanceof Error && !(why instanceof DOMException)
        ? why.message
        : 'The relay was aborted.',
    )
  }
  if (options.signal?.aborted === true) onAbort()
  options.signal?.addEventListener('abort', onAbort, { once: true })
  const timer =
    timeoutMs === null
      ? undefined
      : setTimeout(
          () => halt('timeout', 'timeout', `No completion within ${timeoutMs} ms.`),
          timeoutMs,
        )
  timer?.unref()
  // Resolves when the relay must stop, so a source stuck in `next()` cannot hold it open.
  const stopping = new Promise<'stop'>((resolve) => {
    if (stop.signal.aborted) resolve('stop')
    stop.signal.addEventListener('abort', () => resolve('stop'), { once: true })
  })

  const source =
    options.source instanceof Response
      ? responseTokens(options.source, stop.signal)
      : options.source
  const iterator = source[Symbol.asyncIterator]()
  let tokens = 0
  let failure: { reason: RelayErrorReason; message: string } | undefined
  try {
    while (!stop.signal.aborted) {
      const next = await Promise.race([iterator.next(), stopping])
      if (next === 'stop' || next.done === true) break
      if (typeof next.value !== 'string') continue
      if (tokens >= maxTokens) {
        failure = {
          reason: 'max-tokens',
          message: `The source sent more than ${maxTokens} tokens (maxTokens).`,
        }
        break
      }
      await hub.publish({ topic, event, data: next.value })
      tokens += 1
    }
  } catch (error) {
    failure = {
      reason: 'upstream',
      message: error instanceof Error ? error.message : String(error),
    }
  } finally {
    if (timer !== undefined) clearTimeout(timer)
    options.signal?.removeEventListener('abort', onAbort)
    stop.abort()
    // Cancels the upstream; a source that is stuck may never settle, so this is not awaited.
    void Promise.resolve(iterator.return?.()).catch(() => undefined)
  }

  const ended: RelayFinalData =
    failure !== undefined
      ? { outcome: 'error', tokens, ...failure }
      : stopped !== undefined
        ? { outcome: stopped.outcome, tokens, reason: stopped.reason, message: stopped.message }
        : { outcome: 'done', tokens }
  const key = options.finalIdempotencyKey
  try {
    const result = await hub.publish({
      topic,
      event: ended.outcome === 'done' ? 'done' : 'error',
      data: ended,
      close: true,
      ...(key === undefined ? {} : { idempotencyKey: key }),
    })
    if (result.duplicate === true) return { ...ended, endedElsewhere: true }
  } catch (error) {
    // Another party's final event (other data under the same key) came first: the topic ended.
    if (key !== undefined && isSseError(error) && error.code === ErrorCodes.CONFLICT)
      return { ...ended, endedElsewhere: true }
    throw error
  }
  return ended
}
