/**
 * ssehub in a Fastify 5 app: one chat room per topic.
 *
 * Run it: `npx tsx examples/fastify.ts`, then in two terminals
 *   curl -N 'http://localhost:3000/events?room=lobby&user=ada'
 *   curl -X POST http://localhost:3000/say -H 'content-type: application/json' \
 *     -d '{"room":"lobby","text":"hi"}'
 */
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance } from 'fastify'
import { createHub, errorBody, isSseError, type Hub } from '../src/index.js'

/** The events this app sends: `connection.send` accepts only these names with these payloads. */
export type Events = {
  welcome: { user: string }
  message: { text: string }
}

/**
 * Builds the app (not listening yet):
 * - `GET /events?room=lobby&user=ada` opens an event stream on topic `lobby`;
 * - `POST /say` with `{"room", "text"}` publishes a `message` event to the room.
 */
export function createApp(hub: Hub<Events>): FastifyInstance {
  const app = Fastify()

  app.get<{ Querystring: { room?: string; user?: string } }>('/events', (request, reply) => {
    const { room = 'lobby', user } = request.query
    // Fastify would otherwise send its own reply when this handler returns: hijack() hands the
    // raw response to the hub, which writes the stream (and any 400/503 answer) itself.
    reply.hijack()
    // For the demo the client id comes from the query; a real app takes it from its session
    // or a verified token, since it decides who receives `publish({ clientId })`.
    const connection = hub.subscribe(request.raw, reply.raw, {
      topics: [room],
      ...(user === undefined ? {} : { clientId: user }),
    })
    // Waits in the early-send buffer until the stream opens, then goes out right after the hub's
    // first frames. A no-op (returns false) if the hub refused the request and answered itself.
    connection.send('welcome', { user: user ?? 'anonymous' })
  })

  app.post<{ Body: { room: string; text: string } }>(
    '/say',
    {
      // Fastify validates the body before the handler runs (400 on a mismatch).
      schema: {
        body: {
          type: 'object',
          required: ['room', 'text'],
          properties: { room: { type: 'string' }, text: { type: 'string' } },
        },
      },
      bodyLimit: 16 * 1024,
    },
    async (request, reply) => {
      // `hub.publish` takes any payload; annotating it keeps it in step with the EventMap.
      const message: Events['message'] = { text: request.body.text }
      const { id, localConnections } = await hub.publish({
        topic: request.body.room,
        event: 'message',
        data: message,
      })
      return reply.code(202).send({ id, localConnections })
    },
  )

  // The hub's errors carry an HTTP status and a code: answer them in the hub's own JSON shape.
  app.setErrorHandler((error, _request, reply) => {
    if (!isSseError(error)) throw error
    return reply.code(error.status).type('application/json; charset=utf-8').send(errorBody(error))
  })
  return app
}

// Standalone: `npx tsx examples/fastify.ts`. Importing this module (as the tests do) runs nothing.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const hub = createHub<Events>()
  const app = createApp(hub)
  // Event streams never end by themselves, and closing the server waits for open responses: the
  // hub closes first, which ends every stream (reason `shutdown`; clients reconnect elsewhere).
  app.addHook('preClose', () => hub.close())
  await app.listen({ port: 3000 })
  console.log('listening on http://localhost:3000')
  process.once('SIGINT', () => void app.close())
}
