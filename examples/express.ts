/**
 * ssehub in an Express 5 app: one chat room per topic.
 *
 * Run it: `npx tsx examples/express.ts`, then in two terminals
 *   curl -N 'http://localhost:3000/events?room=lobby&user=ada'
 *   curl -X POST http://localhost:3000/say -H 'content-type: application/json' \
 *     -d '{"room":"lobby","text":"hi"}'
 */
import { fileURLToPath } from 'node:url'
import express, { type ErrorRequestHandler, type Express } from 'express'
import { ErrorCodes, SseError, createHub, errorBody, isSseError, type Hub } from '../src/index.js'

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
export function createApp(hub: Hub<Events>): Express {
  const app = express()

  app.get('/events', (req, res) => {
    const room = typeof req.query.room === 'string' ? req.query.room : 'lobby'
    // For the demo the client id comes from the query; a real app takes it from its session
    // or a verified token, since it decides who receives `publish({ clientId })`.
    const user = typeof req.query.user === 'string' ? req.query.user : undefined
    // Express' `res` is a node:http ServerResponse: the hub writes the stream to it directly, so
    // no compression or other response-buffering middleware may run on this route.
    const connection = hub.subscribe(req, res, {
      topics: [room],
      ...(user === undefined ? {} : { clientId: user }),
    })
    // Waits in the early-send buffer until the stream opens, then goes out right after the hub's
    // first frames. A no-op (returns false) if the hub refused the request and answered itself.
    connection.send('welcome', { user: user ?? 'anonymous' })
  })

  app.post('/say', express.json({ limit: '16kb' }), async (req, res) => {
    const body: unknown = req.body
    if (
      typeof body !== 'object' ||
      body === null ||
      !('room' in body && typeof body.room === 'string') ||
      !('text' in body && typeof body.text === 'string')
    ) {
      throw new SseError(ErrorCodes.BAD_REQUEST, 'Send {"room": "lobby", "text": "hi"}.')
    }
    // `hub.publish` takes any payload; annotating it keeps it in step with the EventMap.
    const message: Events['message'] = { text: body.text }
    // Express 5 forwards a rejected promise to the error handler below (bad room names: 400).
    const { id, localConnections } = await hub.publish({
      topic: body.room,
      event: 'message',
      data: message,
    })
    res.status(202).json({ id, localConnections })
  })

  const onError: ErrorRequestHandler = (error, _req, res, next) => {
    if (!isSseError(error)) {
      next(error)
      return
    }
    res.status(error.status).type('application/json').send(errorBody(error))
  }
  app.use(onError)
  return app
}

// Standalone: `npx tsx examples/express.ts`. Importing this module (as the tests do) runs nothing.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const hub = createHub<Events>()
  const server = createApp(hub).listen(3000, () =>
    console.log('listening on http://localhost:3000'),
  )
  process.once('SIGINT', () => {
    // Event streams never end by themselves, and server.close() waits for open responses: close
    // the hub first, which ends every stream (reason `shutdown`; clients reconnect elsewhere).
    void hub.close().finally(() => server.close())
  })
}
