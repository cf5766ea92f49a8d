/**
 * The hub's relays: generations (LLM answers) started by id, each streamed onto the finite topic
 * `relay/<id>` by {@link relay}, watched by any number of viewers, stopped only by an abort.
 *
 * - Start is idempotent across every node: the first start publishes a `start` event with the
 *   idempotency key `relay:<id>` (atomic in every broker), and only the node whose publish was new
 *   calls the upstream. A later start with that id (another tab, another node, a retry) finds the
 *   topic open or ended, or its key used, and starts nothing.
 * - Viewers leaving never stop a generation: nothing here counts them.
 * - An abort reaches the node that runs the generation through a hub signal (`relay-abort`); that
 *   node cancels the upstream request and publishes the final event. If no node ends the topic
 *   within `abortWaitMs` (its node died), the aborting node publishes the final event itself.
 *   Every final event carries the key `relay-end:<id>`, so the topic gets exactly one.
 * - Clients name an upstream the operator configured, never a URL: the hub calls nothing else.
 */
import { ErrorCodes, SseError, isSseError } from '../errors.js'
import type { Hub } from '../hub/hub.js'
import { closest } from '../closest.js'
import { chatCompletionTokens, relay, type RelayFinalData, type RelayResult } from './relay.js'

/** An OpenAI-compatible chat completions upstream. */
export interface HttpRelayUpstream {
  /** Base URL (`http://host:port` or `.../v1`) or the full `/v1/chat/completions` URL. */
  readonly url: string
  /** Sent as `Authorization: Bearer <apiKey>`. @default null */
  readonly apiKey?: string | null
  /** The `model` of requests whose body names none. @default null */
  readonly model?: string | null
}

/** An upstream in the application's own code (a model in-process, a test double, the mock). */
export interface SourceRelayUpstream {
  /** The tokens of one generation for the request `body`; `signal` aborts it. */
  source(body: Readonly<Record<string, unknown>>, signal: AbortSignal): AsyncIterable<string>
}

/** Where a relay's tokens come from: configured by the operator, named by clients. */
export type RelayUpstream = HttpRelayUpstream | SourceRelayUpstream

/** Options of {@link Relays}. */
export interface RelaysOptions {
  /** The upstreams clients may name, by name. */
  readonly upstreams: Readonly<Record<string, RelayUpstream>>
  /** A generation ends with `error` (reason `timeout`) after this long, in ms. @default 120000 */
  readonly timeoutMs?: number
  /** Most tokens of one generation; past it, `error` (reason `max-tokens`). @default 100000 */
  readonly maxTokens?: number
  /** Generations this node runs at once; past it a start is refused with 503. @default 100 */
  readonly maxRunning?: number
  /**
   * How long an abort waits for the node that runs the generation to end it before ending the
   * topic itself (that node may have died), in ms. @default 2000
   */
  readonly abortWaitMs?: number
}

/** Every default of {@link RelaysOptions}, written once. */
export const RELAY_DEFAULTS = Object.freeze({
  timeoutMs: 120_000,
  maxTokens: 100_000,
  maxRunning: 100,
  abortWaitMs: 2_000,
})

/** What a client sends to start a generation (`POST /relays`). */
export interface RelayStartRequest {
  /** The generation's id (the request id): 1 to 128 of `A-Z a-z 0-9 _ - . :`. */
  readonly id: string
  /** The name of a configured upstream. */
  readonly upstream: string
  /** The chat completion request, e.g. `{ messages: [...] }` (`stream: true` is forced). */
  readonly body?: Readonly<Record<string, unknown>>
}

/** The answer to a start. */
export interface RelayStart {
  readonly id: string
  /** The finite topic of its tokens: `relay/<id>`. */
  readonly topic: string
  /** True when this start began the generation; false when it was running or ran already. */
  readonly started: boolean
  /** The topic's state now: `open` while generating, `ended` once its final event is out. */
  readonly state: 'open' | 'ended'
}

/** The answer to an abort. */
export interface RelayAbort {
  readonly id: string
  readonly topic: string
  /** True when this abort ended the generation; false when it had ended already. */
  readonly aborted: boolean
  /** Always `ended`: an abort returns once the topic's final event is out. */
  readonly state: 'ended'
}

/** The topic of generation `id`. */
export function relayTopic(id: string): string {
  return `relay/${id}`
}

const ID = /^[A-Za-z0-9_.:-]{1,128}$/
const SIGNAL = 'relay-abort'
const POLL_MS = 25

function bad(message: string): SseError {
  return new SseError(ErrorCodes.BAD_REQUEST, message)
}

/**
 * Checks a relay id.
 * @throws {SseError} `ERR_SSE_BAD_REQUEST` saying what an id may hold.
 */
export function checkRelayId(id: unknown): string {
  if (typeof id !== 'string' || !ID.test(id)) {
    throw bad(
      `Expected \`id\` to be 1 to 128 characters of A-Z, a-z, 0-9, \`_\`, \`-\`, \`.\` or \`:\` (e.g. the chat request's id), got ${JSON.stringify(id ?? null)}.`,
    )
  }
  return id
}

function isSource(upstream: RelayUpstream): upstream is SourceRelayUpstream {
  return 'source' in upstream
}

/** The chat completions URL of an upstream given as a base URL or the full URL. */
export function chatCompletionsUrl(url: string): string {
  const trimmed = url.replace(/\/+$/, '')
  if (trimmed.endsWith('/chat/completions')) return trimmed
  return trimmed.endsWith('/v1') ? `${trimmed}/chat/completions` : `${trimmed}/v1/chat/completions`
}

function positive(name: string, value: number): number {
  if (!(Number.isInteger(value) && value > 0))
    throw new RangeError(`Expected \`${name}\` to be a positive integer, got \`${value}\``)
  return value
}

/** Checks the upstream table: names are plain words, HTTP upstreams have http(s) URLs. */
function checkUpstreams(
  upstreams: Readonly<Record<string, RelayUpstream>>,
): ReadonlyMap<string, RelayUpstream> {
  const table = new Map<string, RelayUpstream>()
  for (const [name, upstream] of Object.entries(upstreams)) {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name))
      throw new TypeError(
        `Expected relay upstream names of 1 to 64 characters of A-Z, a-z, 0-9, \`_\`, \`-\` or \`.\`, got ${JSON.stringify(name)}`,
      )
    if (!isSource(upstream) && !/^https?:\/\/\S+$/.test(upstream.url))
      throw new TypeError(
        `Expected the URL of relay upstream ${name} to be an http(s) URL, got ${JSON.stringify(upstream.url)}`,
      )
    table.set(name, upstream)
  }
  return table
}

interface Running {
  readonly controller: AbortController
  readonly done: Promise<RelayResult | null>
}

/**
 * The relays of one hub node. `ssehub serve` and `createHubServer({ relays })` serve them as
 * `POST /relays` and `POST /relays/<id>/abort`; an application that embeds the hub calls
 * {@link Relays.start} and {@link Relays.abort}.
 *
 * @example
 * ```ts
 * const relays = new Relays(hub, { upstreams: { openai: { url: 'https://api.openai.com/v1', apiKey } } })
 * await relays.start({ id: requestId, upstream: 'openai', body: { messages } })
 * // viewers: GET /events?topic=relay/<id>&from=start, or followRelay() from ssehub/client
 * ```
 */
export class Relays {
  private readonly upstreams: ReadonlyMap<string, RelayUpstream>
  private readonly options: Required<Omit<RelaysOptions, 'upstreams'>>
  private readonly running = new Map<string, Running>()
  private closed = false
  private readonly onSignal = (name: string, data: string): void => {
    if (name === SIGNAL) this.running.get(data)?.controller.abort(stoppedByAbort(data))
  }

  /** @throws {TypeError | RangeError} for a bad option, naming it. */
  constructor(
    private readonly hub: Hub,
    options: RelaysOptions,
  ) {
    this.upstreams = checkUpstreams(options.upstreams)
    const d = RELAY_DEFAULTS
    this.options = {
      timeoutMs: positive('relayTimeoutMs', options.timeoutMs ?? d.timeoutMs),
      maxTokens: positive('relayMaxTokens', options.maxTokens ?? d.maxTokens),
      maxRunning: positive('maxRelays', options.maxRunning ?? d.maxRunning),
      abortWaitMs: positive('relayAbortWaitMs', options.abortWaitMs ?? d.abortWaitMs),
    }
    hub.on('signal', this.onSignal)
  }

  /** The configured upstreams' names. */
  get upstreamNames(): readonly string[] {
    return [...this.upstreams.keys()]
  }

  /** Generations this node runs now. */
  get runningCount(): number {
    return this.running.size
  }

  /**
   * Starts generation `request.id` unless it runs or ran already (on any node): then it answers
   * with the same topic and `started: false`. Resolves once the `start` event is published; the
   * tokens follow on `relay/<id>`.
   * @throws {SseError} `ERR_SSE_BAD_REQUEST` (a bad id, an upstream that is not configured),
   * `ERR_SSE_CONFLICT` (the id was started with another upstream), `ERR_SSE_LIMIT_REACHED`
   * (this node runs `maxRunning` generations), `ERR_SSE_CLOSED`, or the hub's publish errors.
   */
  async start(request: RelayStartRequest): Promise<RelayStart> {
    const id = checkRelayId(request.id)
    const upstream = this.upstreamOf(request.upstream)
    const body = request.body ?? {}
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw bad('Expected `body` to be a JSON object: the chat completion request.')
    if (this.closed) throw new SseError(ErrorCodes.CLOSED, 'The hub is shutting down.')
    const topic = relayTopic(id)
    // An ended generation keeps its topic's ended mark for longer than the start's idempotency
    // key lives: it is not started again (and no stray `start` event reopens its topic).
    // (Its events say so, not its subscribers: viewers may subscribe before the start.)
    const known = await this.hub.topicState(topic)
    if (known.state === 'ended') return { id, topic, started: false, state: 'ended' }
    const ran = known.lastEventId !== null
    if (!ran && this.running.size >= this.options.maxRunning) {
      throw new SseError(
        ErrorCodes.LIMIT_REACHED,
        `This node runs ${this.options.maxRunning} generations (maxRelays); retry later or raise --max-relays.`,
      )
    }
    // The claim: the start event under the key `relay:<id>`, atomic on every broker. A request
    // for a running generation is a duplicate (it joins), or a conflict when its upstream differs.
    let claim
    try {
      claim = await this.hub.publish({
        topic,
        event: 'start',
        data: { id, upstream: request.upstream },
        idempotencyKey: `relay:${id}`,
      })
    } catch (error) {
      if (isSseError(error) && error.code === ErrorCodes.CONFLICT) {
        throw new SseError(
          ErrorCodes.CONFLICT,
          `Relay ${JSON.stringify(id)} was started with another upstream; use a new id for a new generation.`,
        )
      }
      throw error
    }
    // Joined: or the topic had events but the key was forgotten (a generation running for longer
    // than the idempotency window): never a second upstream call for one id.
    if (claim.duplicate === true || ran) {
      const now = await this.hub.topicState(topic)
      return { id, topic, started: false, state: now.state === 'ended' ? 'ended' : 'open' }
    }
    this.run(id, topic, upstream, body)
    return { id, topic, started: true, state: 'open' }
  }

  /**
   * Stops generation `id` for every viewer, whichever node runs it: the upstream request is
   * cancelled and the topic ends with `error` (reason `aborted`). Resolves once the final event
   * is out; an ended generation answers `aborted: false`.
   * @throws {SseError} `ERR_SSE_NOT_FOUND` when no generation has that id, `ERR_SSE_BAD_REQUEST`.
   */
  async abort(id: string): Promise<RelayAbort> {
    checkRelayId(id)
    const topic = relayTopic(id)
    const local = this.running.get(id)
    if (local !== undefined) {
      local.controller.abort(stoppedByAbort(id))
      const result = await local.done
      return {
        id,
        topic,
        aborted: result !== null && result.endedElsewhere !== true,
        state: 'ended',
      }
    }
    const known = await this.hub.topicState(topic)
    // Viewers alone (subscribed before any start) are no generation.
    if (known.state === 'unknown' || (known.state === 'open' && known.lastEventId === null)) {
      throw new SseError(
        ErrorCodes.NOT_FOUND,
        `No generation ${JSON.stringify(id)} is known (never started, or forgotten): nothing to abort.`,
      )
    }
    if (known.state === 'ended') return { id, topic, aborted: false, state: 'ended' }
    // Another node runs it: tell every node; the one that runs it ends the topic.
    await this.hub.signal(SIGNAL, id)
    const deadline = Date.now() + this.options.abortWaitMs
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS))
      if ((await this.hub.topicState(topic)).state === 'ended')
        return { id, topic, aborted: true, state: 'ended' }
    }
    // Nobody ended it: its node died (or is cut off). End it here, under the final event's key,
    // so that a node that wakes up cannot publish a second final event.
    const final: Omit<RelayFinalData, 'tokens'> = {
      outcome: 'aborted',
      reason: 'aborted',
      message: `Stopped by an abort; the node running it did not answer within ${this.options.abortWaitMs} ms.`,
    }
    try {
      const result = await this.hub.publish({
        topic,
        event: 'error',
        data: final,
        close: true,
        idempotencyKey: finalKey(id),
      })
      return { id, topic, aborted: result.duplicate !== true, state: 'ended' }
    } catch (error) {
      if (isSseError(error) && error.code === ErrorCodes.CONFLICT)
        return { id, topic, aborted: false, state: 'ended' }
      throw error
    }
  }

  /**
   * Stops every generation this node runs (reason `aborted`, message "the hub shut down") and
   * resolves once their final events are published; starts are refused from now on.
   */
  async close(): Promise<void> {
    this.closed = true
    this.hub.off('signal', this.onSignal)
    const stopping = [...this.running.values()]
    for (const { controller } of stopping) {
      controller.abort(new Error('The hub shut down before the generation finished.'))
    }
    await Promise.all(stopping.map(({ done }) => done))
  }

  private upstreamOf(name: unknown): RelayUpstream {
    const names = this.upstreamNames
    if (typeof name !== 'string' || name === '')
      throw bad(
        `Expected \`upstream\` to name a configured upstream (${names.join(', ') || 'none configured: start the hub with --relay-upstream NAME=URL'}).`,
      )
    const upstream = this.upstreams.get(name)
    if (upstream !== undefined) return upstream
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(name))
      throw bad(
        `\`upstream\` names a configured upstream, not a URL: the hub calls only the upstreams its operator configured (${names.join(', ') || 'none'}).`,
      )
    const near = closest(name, names)
    throw bad(
      names.length === 0
        ? `No relay upstream is configured on this hub; start it with --relay-upstream ${name}=URL.`
        : `Unknown upstream ${JSON.stringify(name)}${near === undefined ? '' : `; did you mean ${JSON.stringify(near)}?`} Configured: ${names.join(', ')}.`,
    )
  }

  private run(
    id: string,
    topic: string,
    upstream: RelayUpstream,
    body: Readonly<Record<string, unknown>>,
  ): void {
    const controller = new AbortController()
    const source = isSource(upstream)
      ? sourceOf(upstream, body, controller.signal)
      : chatCompletionTokens({
          url: chatCompletionsUrl(upstream.url),
          ...(upstream.apiKey === undefined || upstream.apiKey === null
            ? {}
            : { apiKey: upstream.apiKey }),
          body: {
            ...(upstream.model === undefined || upstream.model === null
              ? {}
              : { model: upstream.model }),
            ...body,
          },
          signal: controller.signal,
        })
    const done = relay(this.hub, {
      topic,
      source,
      timeoutMs: this.options.timeoutMs,
      maxTokens: this.options.maxTokens,
      signal: controller.signal,
      finalIdempotencyKey: finalKey(id),
    })
      .catch((error: unknown) => {
        // The hub refused the final event (its broker is down): viewers see the topic open.
        this.hub.reportError(
          new Error(`Relay ${id}: the final event could not be published`, { cause: error }),
        )
        return null
      })
      .finally(() => this.running.delete(id))
    this.running.set(id, { controller, done })
  }
}

/**
 * An application's source, called lazily: a `source()` that throws (rather than returning a
 * failing iterable) ends the generation with `error` (reason `upstream`) like any upstream failure,
 * instead of leaving a started topic without its final event.
 */
async function* sourceOf(
  upstream: SourceRelayUpstream,
  body: Readonly<Record<string, unknown>>,
  signal: AbortSignal,
): AsyncGenerator<string, void, undefined> {
  yield* upstream.source(body, signal)
}

function finalKey(id: string): string {
  return `relay-end:${id}`
}

function stoppedByAbort(id: string): Error {
  return new Error(`Stopped by POST /relays/${id}/abort.`)
}
