/**
 * ssehub in a Hono 4 app served by `@hono/node-server`: one chat room per topic, plus a token
 * stream (an LLM-style answer) on a finite topic.
 *
 * Run it: `npx tsx examples/hono.ts`, then in two terminals
 *   curl -N 'http://localhost:3000/events?room=answer-1'
 *   curl -X POST http://localhost:3000/ask -H 'content-type: application/json' \
 *     -d '{"room":"answer-1","prompt":"hello there"}'
 */
import { fileURLToPath } from 'node:url'
import { serve } from '@hono/node-server'
import { getConnInfo } from '@hono/node-server/conninfo'
import { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { ErrorCodes, SseError, createHub, errorBody, isSseError, type Hub } from '../src/index.js'

/** The events this app sends: `connection.send` accepts only these names with these payloads. */
export type Events = {
  welcome: { user: string }
  message: { text: string }
}

/**
 * Builds the app:
 * - `GET /events?room=lobby&user=ada` opens an event stream on topic `lobby`;
 * - `POST /say` with `{"room", "text"}` publishes a `message` event to the room;
 * - `POST /ask` with `{"room", "prompt"}` streams an answer into the room as `token` events and
 *   ends the room with a `done` event.
 */
export function createApp(hub: Hub<Events>): Hono {
  const app = new Hono()
  // A client must not make the server buffer an endless body (413 past this).
  const limit = bodyLimit({ maxSize: 16 * 1024 })

  app.get('/events', (c) => {
    const room = c.req.query('room') ?? 'lobby'
    // For the demo the client id comes from the query; a real app takes it from its session
    // or a verified token, since it decides who receives `publish({ clientId })`.
    const user = c.req.query('user')
    const { connection, response } = hub.subscribeWeb(
      c.req.raw,
      { topics: [room], ...(user === undefined ? {} : { clientId: user }) },
      // The peer address, so that the hub's per-IP connection limit applies here too.
      getConnInfo(c).remote.address,
    )
    // Waits in the early-send buffer until the stream opens, then goes out right after the hub's
    // first frames. A no-op (returns false) if the hub refused the request.
    connection.send('welcome', { user: user ?? 'anonymous' })
    // Resolves once the hub decided: the event stream, or its 400/503/204 answer.
    return response
  })

  app.post('/say', limit, async (c) => {
    const { room, text } = await readStrings(c.req.raw, 'room', 'text')
    // `hub.publish` takes any payload; annotating it keeps it in step with the EventMap.
    const message: Events['message'] = { text }
    const { id, localConnections } = await hub.publish({
      topic: room,
      event: 'message',
      data: message,
    })
    return c.json({ id, localConnections }, 202)
  })

  app.post('/ask', limit, async (c) => {
    const { room, prompt } = await readStrings(c.req.raw, 'room', 'prompt')
    // Every token becomes one `token` event on the room. The final `done` event closes the
    // topic: streams on it end, and a reconnecting EventSource gets 204 and stops for good, so
    // use a fresh room per answer. Subscribe before asking: a stream opened without a
    // Last-Event-ID starts live.
    const ids = await hub.pipe({ topic: room }, fakeCompletion(prompt), {
      event: 'token',
      close: { event: 'done', data: '' },
    })
    return c.json({ ids })
  })

  // The hub's errors carry an HTTP status and a code: answer them in the hub's own JSON shape.
  app.onError((error) => {
    if (!isSseError(error)) throw error
    return new Response(errorBody(error), {
      status: error.status,
      headers: { 'content-type': 'application/json; charset=utf-8' },
    })
  })
  return app
}

/** Stands in for a model's token stream: the reply word by word, each with its leading space. */
export async function* fakeCompletion(prompt: string): AsyncGenerator<string> {
  for (const token of `You said: ${prompt}`.match(/\s*\S+/g) ?? []) {
    // A real model awaits the network between tokens.
    await Promise.resolve()
    yield token
  }
}

/** Reads a JSON object body whose `names` fields are strings; anything else is a 400. */
async function readStrings<K extends string>(
  request: Request,
  ...names: K[]
): Promise<Record<K, string>> {
  const example = JSON.stringify(Object.fromEntries(names.map((name) => [name, '...'])))
  const bad = (cause?: unknown): SseError =>
    new SseError(ErrorCodes.BAD_REQUEST, `Send a JSON object ${example}.`, { cause })
  let body: unknown
  try {
    body = await request.json()
  } catch (error) {
    throw bad(error)
  }
  if (typeof body !== 'object' || body === null) throw bad()
  const fields = body as Record<string, unknown>
  for (const name of names) if (typeof fields[name] !== 'string') throw bad()
  return fields as Record<K, string>
}

// Standalone: `npx tsx examples/hono.ts`. Importing this module (as the tests do) runs nothing.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const hub = createHub<Events>()
  const server = serve({ fetch: createApp(hub).fetch, port: 3000 }, (info) =>
    console.log(`listening on http://localhost:${info.port}`),
  )
  process.once('SIGINT', () => {
    // Event streams never end by themselves, and server.close() waits for open responses: close
    // the hub first, which ends every stream (reason `shutdown`; clients reconnect elsewhere).
    void hub.close().finally(() => server.close())
  })
}
