/**
 * The hub server's request pipeline: every API route written once, transport-neutral. A front
 * (node:http, or the socket-level fast front) turns bytes into a {@link HubRequest} and a body,
 * calls {@link Pipeline.run}, and writes the {@link Outcome}: an answer, or a stream/poll for it
 * to attach with its own transport. Auth, rate limits, validation, `Last-Event-ID` precedence
 * and error answers live here and nowhere else.
 */
import { lastEventIdOf, subscribeQuery } from '../connection/subscribe-request.js'
import { ErrorCodes, SseError, errorBody, isSseError } from '../errors.js'
import type { Hub } from '../hub/hub.js'
import type { PublishInput, PublishResult, SubscribeParams } from '../hub/types.js'
import type { Access, AccessRequest, Principal } from './access.js'
import { checkRelayId, relayTopic, type Relays } from '../relay/relays.js'
import { parseBatchBody, parsePublishBody, parseRelayStartBody } from './body.js'
import { pollTimeout } from './poll.js'
import type { Route } from './routes.js'
import type { AuthRefusal } from './server-options.js'

/** A request as the pipeline sees it, whichever front read it. */
export interface HubRequest extends AccessRequest {
  readonly method: string
  readonly path: string
}

/** What a refusal names of its request (never the query: a token may travel there). */
export type RequestLine = Pick<HubRequest, 'method' | 'path' | 'remoteAddress'>

/** A complete answer. The front adds framing headers (length, date, keep-alive). */
export interface Answer {
  readonly status: number
  /** Headers besides content-type and content-length (e.g. `retry-after`, `allow`). */
  readonly headers?: Readonly<Record<string, string>>
  /** The body; JSON unless `type` says otherwise. None for 204. */
  readonly body?: string
  /** The content type of a non-JSON body. */
  readonly type?: string
}

/** What becomes of a request: an answer, or an event stream / long poll for the front to attach. */
export type Outcome =
  | Answer
  | { readonly kind: 'stream'; readonly params: SubscribeParams }
  | { readonly kind: 'poll'; readonly params: SubscribeParams; readonly timeoutMs: number }

/** True when `outcome` is an {@link Answer}. */
export function isAnswer(outcome: Outcome): outcome is Answer {
  return !('kind' in outcome)
}

/** Routes whose handler reads the request body. */
export function needsBody(route: Route): boolean {
  return route.name === 'publish' || route.name === 'batch' || route.name === 'relay-start'
}

/** What the pipeline needs besides the hub and the access rules. */
export interface PipelineOptions {
  readonly maxBatchEvents: number
  /** Prometheus text of `/metrics`, when it is on. */
  readonly metrics: { metrics(): Promise<string>; readonly contentType: string } | null
  /** Reports a bug (an error that is not an SseError) to the hub's error channel. */
  readonly report: (error: Error) => void
  /** Told of each 401/403 answered (the server's `onAuthRefused`). */
  readonly authRefused: ((refusal: AuthRefusal) => void) | null
  /** The generations behind `POST /relays`. */
  readonly relays: Relays
}

/** A JSON answer. */
export function jsonAnswer(
  status: number,
  value: unknown,
  headers?: Readonly<Record<string, string>>,
): Answer {
  const body = JSON.stringify(value)
  return headers === undefined ? { status, body } : { status, headers, body }
}

/** The answer to an SseError: its status (from the code table) and JSON body. */
export function errorAnswer(error: SseError, headers?: Readonly<Record<string, string>>): Answer {
  const body = errorBody(error)
  return headers === undefined
    ? { status: error.status, body }
    : { status: error.status, headers, body }
}

function rateLimited(wait: number): Answer {
  return errorAnswer(
    new SseError(
      ErrorCodes.RATE_LIMITED,
      `Too many publishes; retry in ${wait} s (publishRatePerSecond).`,
    ),
    { 'retry-after': String(wait) },
  )
}

const publishAnswer = (result: PublishResult): Answer => ({
  status: 200,
  body: JSON.stringify(result),
})

/**
 * `POST /publish`'s `Idempotency-Key` header, as the input's `idempotencyKey` (checked by the
 * hub). The body may carry the same key as a field; two different keys are a 400, not a guess.
 */
function withIdempotencyKey(
  input: PublishInput,
  header: string | string[] | undefined,
): PublishInput {
  if (header === undefined) return input
  const key = Array.isArray(header) ? header.join(', ') : header
  if (input.idempotencyKey !== undefined && input.idempotencyKey !== key) {
    throw new SseError(
      ErrorCodes.BAD_REQUEST,
      "The Idempotency-Key header and the body's `idempotencyKey` differ; send one of them.",
    )
  }
  return { ...input, idempotencyKey: key }
}

/** The stats that add up over nodes (distinct topics and client ids do not). */
const SUMMED = [
  'connections',
  'eventsPublished',
  'eventsOut',
  'bytesOut',
  'slowConsumerCloses',
  'evictions',
  'rejections',
] as const

/**
 * `GET /stats`: this node's stats (the fields as before), its id, and the cluster: every live
 * node's last report and the totals that add up. If the presence cannot be read, the local part
 * still answers and `cluster.error` says why.
 */
async function clusterStats(hub: Hub): Promise<object> {
  const local = hub.stats()
  let nodes
  try {
    nodes = await hub.clusterNodes()
  } catch (error) {
    return { ...local, node: hub.node, cluster: { error: (error as Error).message } }
  }
  const totals: Record<string, number> = {}
  for (const name of SUMMED) {
    totals[name] = nodes.reduce((sum, report) => {
      const value = (report.stats as Record<string, unknown>)[name]
      return sum + (typeof value === 'number' ? value : 0)
    }, 0)
  }
  return { ...local, node: hub.node, cluster: { nodes, totals } }
}

/** The API's handlers over one hub. */
export class Pipeline {
  constructor(
    private readonly hub: Hub,
    private readonly access: Access,
    private readonly options: PipelineOptions,
  ) {}

  /**
   * Runs `route` for `req` (with its body when {@link needsBody}). Never throws nor rejects:
   * errors are answers. A publish by the key or to an open hub, on the memory broker, is answered
   * in the calling tick (no promise), which is what makes the fast front fast.
   */
  run(route: Route, req: HubRequest, body: Buffer | null): Outcome | Promise<Outcome> {
    try {
      if (route.name === 'publish') return this.publish(req, body ?? Buffer.alloc(0))
      const outcome = this.runAsync(route, req, body)
      return outcome.catch((error: unknown) => this.fail(error, req))
    } catch (error) {
      return this.fail(error, req)
    }
  }

  /**
   * The answer to a failure: the SseError's own, else a 500 (the bug is reported). Every error
   * answer of the server is made here, so this is where a 401/403 is told to `authRefused`
   * (given the request it answers).
   */
  fail(error: unknown, req?: RequestLine): Answer {
    if (isSseError(error)) {
      if (
        req !== undefined &&
        (error.code === ErrorCodes.UNAUTHORIZED || error.code === ErrorCodes.FORBIDDEN)
      )
        this.authRefused(error, req)
      return errorAnswer(error)
    }
    this.options.report(error instanceof Error ? error : new Error(String(error)))
    return errorAnswer(new SseError(ErrorCodes.INTERNAL, 'Internal error; the hub reported it.'))
  }

  private authRefused(error: SseError, req: RequestLine): void {
    const hook = this.options.authRefused
    if (hook === null) return
    try {
      hook({
        status: error.status,
        code: error.code,
        message: error.message,
        method: req.method,
        path: req.path,
        remoteAddress: req.remoteAddress,
      })
    } catch (bug) {
      // The application's hook failed: its bug is reported, the refusal is still answered.
      this.options.report(bug instanceof Error ? bug : new Error(String(bug)))
    }
  }

  private publish(req: HubRequest, body: Buffer): Answer | Promise<Answer> {
    // Tokens need an (asynchronous) signature check: they take the other path.
    const principal = this.access.quickPublisher(req.headers)
    if (principal === null) return this.publishSlow(req, body)
    return this.publishAs(principal, req, body)
  }

  private async publishSlow(req: HubRequest, body: Buffer): Promise<Answer> {
    try {
      return await this.publishAs(await this.access.publisher(req), req, body)
    } catch (error) {
      return this.fail(error, req)
    }
  }

  private publishAs(principal: Principal, req: HubRequest, body: Buffer): Answer | Promise<Answer> {
    try {
      const wait = this.access.publishWait(principal, req.remoteAddress)
      if (wait > 0) return rateLimited(wait)
      const input = withIdempotencyKey(
        parsePublishBody(req.headers['content-type'], body),
        req.headers['idempotency-key'],
      )
      this.access.authorizeInput(principal, input)
      const result = this.hub.publishNow(input)
      if (result !== undefined) return publishAnswer(result)
      return this.hub.publish(input).then(publishAnswer, (error: unknown) => this.fail(error, req))
    } catch (error) {
      return this.fail(error, req)
    }
  }

  private async runAsync(route: Route, req: HubRequest, body: Buffer | null): Promise<Outcome> {
    const { hub, access } = this
    switch (route.name) {
      case 'batch':
        return this.batch(req, body ?? Buffer.alloc(0))
      case 'events':
        return { kind: 'stream', params: await this.streamParams(req) }
      case 'poll': {
        const timeoutMs = pollTimeout(req.query().get('timeoutMs'))
        if (timeoutMs === undefined) {
          throw new SseError(
            ErrorCodes.BAD_REQUEST,
            'Expected `timeoutMs` to be an integer number of milliseconds (at most 30000).',
          )
        }
        return { kind: 'poll', params: await this.streamParams(req), timeoutMs }
      }
      case 'close-client': {
        await access.operator(req)
        const clientId = route.param!
        if ((await hub.closeClient(clientId)) === 0) {
          throw new SseError(
            ErrorCodes.NOT_FOUND,
            `No connection of client ${JSON.stringify(clientId)} is open on any node.`,
          )
        }
        return { status: 204 }
      }
      case 'revoke-client':
        await access.operator(req)
        await hub.revokeClient(route.param!)
        return { status: 204 }
      case 'clients': {
        // Client ids and addresses are personal data: behind the key when one is set.
        await access.operator(req)
        const limit = Math.min(Number(req.query().get('limit') ?? 1000) || 1000, 10_000)
        return jsonAnswer(200, { connections: await hub.describeClusterConnections(limit) })
      }
      case 'topic': {
        // Its state, latest id and subscribers on every node; in headers too, for HEAD.
        const info = await hub.topicState(route.param!)
        return jsonAnswer(200, info, {
          'ssehub-topic-state': info.state,
          'ssehub-subscribers': String(info.subscribers),
          ...(info.lastEventId === null ? {} : { 'ssehub-last-event-id': info.lastEventId }),
        })
      }
      case 'healthz': {
        const broker = hub.broker.health()
        return jsonAnswer(broker.ok ? 200 : 503, { status: broker.ok ? 'ok' : 'degraded', broker })
      }
      case 'stats':
        return jsonAnswer(200, await clusterStats(hub))
      case 'metrics': {
        const metrics = this.options.metrics!
        return { status: 200, type: metrics.contentType, body: await metrics.metrics() }
      }
      case 'relay-start':
        return this.relayStart(req, body ?? Buffer.alloc(0))
      case 'relay-abort': {
        // Stopping a generation for every viewer is its own right (a watcher may not).
        const id = checkRelayId(route.param)
        await access.aborter(req, relayTopic(id))
        return jsonAnswer(200, await this.options.relays.abort(id))
      }
      case 'publish':
        // Answered by run() before.
        throw new Error(`route ${route.name} reached runAsync`)
    }
  }

  /**
   * `POST /relays`: starts a generation on `relay/<id>` unless it runs or ran (202 when this
   * request started it, 200 when it joined one). Starting needs the right to publish to its topic.
   */
  private async relayStart(req: HubRequest, body: Buffer): Promise<Answer> {
    const principal = await this.access.publisher(req)
    const request = parseRelayStartBody(req.headers['content-type'], body)
    const topic = relayTopic(checkRelayId(request.id))
    this.access.authorizeInput(principal, { topic, data: '' })
    const wait = this.access.publishWait(principal, req.remoteAddress)
    if (wait > 0) return rateLimited(wait)
    const start = await this.options.relays.start(request)
    return jsonAnswer(start.started ? 202 : 200, start)
  }

  /**
   * `POST /publish/batch`: authorizes every event, takes one rate token per event, and publishes
   * them in order.
   */
  private async batch(req: HubRequest, body: Buffer): Promise<Answer> {
    const principal = await this.access.publisher(req)
    const inputs = parseBatchBody(req.headers['content-type'], body, this.options.maxBatchEvents)
    for (const input of inputs) this.access.authorizeInput(principal, input)
    const limit = this.access.batchLimit(principal)
    if (limit !== null && inputs.length > limit) {
      throw new SseError(
        ErrorCodes.BAD_REQUEST,
        `A batch may hold at most ${limit} events (publishBurst) for this publisher, got ${inputs.length}; split it.`,
      )
    }
    const wait = this.access.publishWait(principal, req.remoteAddress, inputs.length)
    if (wait > 0) return rateLimited(wait)
    return jsonAnswer(200, { results: await this.hub.publishMany(inputs) })
  }

  /**
   * A stream's parameters: the query (`topic`, `clientId`, `lastEventId`), the token's rights
   * (401/403 when it does not allow them), and `Last-Event-ID`, which wins over the query.
   */
  private async streamParams(req: HubRequest): Promise<SubscribeParams> {
    const query = req.query()
    const asked = subscribeQuery(query)
    const auth = this.access.auth
    const token = auth.enabled ? auth.tokenOf(req, query) : undefined
    const { clientId, expiresAt } = await auth.authorizeSubscribe(
      token,
      asked.topics,
      asked.clientId,
    )
    const lastEventId = lastEventIdOf(req.headers['last-event-id'], asked.lastEventId)
    return {
      topics: asked.topics,
      ...(asked.from === undefined ? {} : { from: asked.from }),
      ...(clientId === undefined ? {} : { clientId }),
      ...(lastEventId === undefined ? {} : { lastEventId }),
      ...(expiresAt === undefined ? {} : { expiresAt }),
      // The client's address as the front determined it (a trusted proxy's forwarded one): the
      // hub's per-IP limit and `/clients` use it, whatever transport carries the stream.
      ...(req.remoteAddress === undefined ? {} : { remoteAddress: req.remoteAddress }),
    }
  }
}
