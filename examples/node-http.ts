/**
 * ssehub in a plain `node:http` server: one chat room per topic.
 *
 * Run it: `npx tsx examples/node-http.ts`, then in two terminals
 *   curl -N 'http://localhost:3000/events?room=lobby&user=ada'
 *   curl -X POST http://localhost:3000/say -H 'content-type: application/json' \
 *     -d '{"room":"lobby","text":"hi"}'
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { fileURLToPath } from 'node:url'
import { ErrorCodes, SseError, createHub, errorBody, isSseError, type Hub } from '../src/index.js'

/** The events this app sends: `connection.send` accepts only these names with these payloads. */
export type Events = {
  welcome: { user: string }
  message: { text: string }
}

/** Largest `POST /say` body read: a client must not make the server buffer an endless body. */
const maxBodyBytes = 16 * 1024

/**
 * Builds the server (not listening yet):
 * - `GET /events?room=lobby&user=ada` opens an event stream on topic `lobby`;
 * - `POST /say` with `{"room", "text"}` publishes a `message` event to the room.
 */
export function createApp(hub: Hub<Events>): Server {
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (req.method === 'GET' && url.pathname === '/events') {
      const room = url.searchParams.get('room') ?? 'lobby'
      // For the demo the client id comes from the query; a real app takes it from its session
      // or a verified token, since it decides who receives `publish({ clientId })`.
      const user = url.searchParams.get('user')
      const connection = hub.subscribe(req, res, {
        topics: [room],
        ...(user === null ? {} : { clientId: user }),
      })
      // The stream is not open yet (the hub first looks up the history): this event waits in the
      // connection's early-send buffer and goes out, in order, right after the hub's first frames.
      // If the hub refused the request (a bad room name, a limit), it already answered and this
      // send is a no-op returning false.
      connection.send('welcome', { user: user ?? 'anonymous' })
      return
    }
    if (req.method === 'POST' && url.pathname === '/say') {
      say(hub, req, res).catch((error: unknown) => sendError(res, error))
      return
    }
    sendError(res, new SseError(ErrorCodes.NOT_FOUND, 'Try GET /events or POST /say.'))
  })
}

async function say(hub: Hub<Events>, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = parseJson(await readBody(req))
  if (typeof body?.room !== 'string' || typeof body.text !== 'string') {
    throw badRequest('Send a JSON object {"room": "lobby", "text": "hi"}.')
  }
  // `hub.publish` takes any payload; annotating it keeps it in step with the EventMap.
  const message: Events['message'] = { text: body.text }
  const { id, localConnections } = await hub.publish({
    topic: body.room,
    event: 'message',
    data: message,
  })
  sendJson(res, 202, { id, localConnections })
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > maxBodyBytes) {
        reject(new SseError(ErrorCodes.BODY_TOO_LARGE, `Keep bodies under ${maxBodyBytes} bytes.`))
        req.pause()
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null
      ? (value as Record<string, unknown>)
      : undefined
  } catch (error) {
    throw badRequest('The body is not valid JSON.', error)
  }
}

function badRequest(message: string, cause?: unknown): SseError {
  return new SseError(ErrorCodes.BAD_REQUEST, message, { cause })
}

/** Answers like the hub does: `{"error": {"code", "message"}}` with the error's status. */
function sendError(res: ServerResponse, error: unknown): void {
  if (!isSseError(error)) {
    // Unexpected: log it, and tell the client nothing about internals.
    console.error(error)
    res.writeHead(500).end()
    return
  }
  res.writeHead(error.status, {
    'content-type': 'application/json; charset=utf-8',
    // A body left unread (too large) must not be parsed as the next request: close after this.
    ...(res.req.complete ? {} : { connection: 'close' }),
  })
  res.end(errorBody(error))
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' })
  res.end(JSON.stringify(value))
}

// Standalone: `npx tsx examples/node-http.ts`. Importing this module (as the tests do) runs nothing.
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
