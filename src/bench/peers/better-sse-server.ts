/**
 * better-sse in a minimal server, the way its README shows it: one Channel per topic and one per
 * client id; a publish is `channel.broadcast(data)`. Same HTTP API as the ssehub server:
 * `GET /events?topic=T&clientId=C`, `POST /publish {topic|clientId, data}`.
 */
import { createServer } from 'node:http'
import { createChannel, createSession, type Channel } from 'better-sse'
import { readJson, serve } from './harness.js'

const channels = new Map<string, Channel>()
const channelOf = (name: string): Channel => {
  let channel = channels.get(name)
  if (channel === undefined) channels.set(name, (channel = createChannel()))
  return channel
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x')
  if (req.method === 'GET' && url.pathname === '/events') {
    const names = url.searchParams.getAll('topic')
    const clientId = url.searchParams.get('clientId')
    if (clientId !== null) names.push(`@c/${clientId}`)
    createSession(req, res).then(
      (session) => {
        for (const name of names) channelOf(name).register(session)
      },
      () => res.destroy(),
    )
    return
  }
  if (req.method === 'POST' && url.pathname === '/publish') {
    readJson(req).then(
      (body) => {
        const names = typeof body.topic === 'string' ? [body.topic] : [...(body.topic ?? [])]
        if (body.clientId !== undefined) names.push(`@c/${body.clientId}`)
        let connections = 0
        for (const name of names) {
          const channel = channels.get(name)
          if (channel === undefined) continue
          channel.broadcast(body.data)
          connections += channel.sessionCount
        }
        const text = JSON.stringify({ connections })
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': text.length })
        res.end(text)
      },
      () => res.writeHead(400).end(),
    )
    return
  }
  res.writeHead(404).end()
})
serve(server)
