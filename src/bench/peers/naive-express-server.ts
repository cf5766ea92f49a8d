/**
 * The "naive" hub, written the way the Spring Boot SseEmitter examples do it: a Map of client id
 * to response, and a publish that loops over it calling `res.write`. No backpressure, no
 * slow-consumer policy, no history: the baseline most applications start from.
 */
import express, { type Response } from 'express'
import { createServer } from 'node:http'
import { readJson, serve } from './harness.js'

interface Emitter {
  readonly res: Response
  readonly topics: readonly string[]
  readonly clientId: string
}

const emitters = new Map<string, Emitter>()
let anonymous = 0
const app = express()

app.get('/events', (req, res) => {
  const url = new URL(req.url, 'http://x')
  const clientId = url.searchParams.get('clientId') ?? `anon-${++anonymous}`
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
  })
  res.flushHeaders()
  emitters.set(clientId, { res, topics: url.searchParams.getAll('topic'), clientId })
  res.on('close', () => emitters.delete(clientId))
})

app.post('/publish', (req, res) => {
  readJson(req).then(
    (body) => {
      const topics = typeof body.topic === 'string' ? [body.topic] : (body.topic ?? [])
      const frame = `data: ${typeof body.data === 'string' ? body.data : JSON.stringify(body.data)}\n\n`
      let connections = 0
      if (body.clientId !== undefined) {
        const emitter = emitters.get(body.clientId)
        if (emitter !== undefined) {
          emitter.res.write(frame)
          connections++
        }
      }
      if (topics.length > 0) {
        for (const emitter of emitters.values()) {
          if (emitter.topics.some((topic) => topics.includes(topic))) {
            emitter.res.write(frame)
            connections++
          }
        }
      }
      res.json({ connections })
    },
    () => res.status(400).end(),
  )
})

serve(createServer(app))
