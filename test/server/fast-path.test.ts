import { createServer } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { parseFastRequest } from '../../src/connection/fast-request.js'
import { startHub, type TestHub } from '../helpers/hub-server.js'
import { openStream } from '../helpers/raw-stream.js'
import { waitFor } from '../helpers/wait.js'

/** One HTTP/1.1 answer read off a raw socket. */
interface Answer {
  readonly head: string
  readonly status: number
  readonly body: string
}

/** A raw client socket: write exact bytes, read whole answers (by Content-Length). */
class RawClient {
  private received = Buffer.alloc(0)
  private closed = false
  private readonly socket: Socket

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1')
    this.socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk])
    })
    this.socket.on('close', () => (this.closed = true))
    this.socket.on('error', () => (this.closed = true))
  }

  /** Writes `bytes`; resolves once they left this process. */
  send(bytes: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.write(bytes, (error) => (error ? reject(error) : resolve())),
    )
  }

  /** Waits for `count` whole answers (or the close of the connection) and returns them. */
  async answers(count: number): Promise<Answer[]> {
    return waitFor(() => {
      const parsed = parseAnswers(this.received)
      return parsed.length >= count || this.closed ? parsed : undefined
    }, `${count} answers`)
  }

  isClosed(): boolean {
    return this.closed
  }

  /** Everything received so far, as Latin-1 text (exact bytes). */
  text(): string {
    return this.received.toString('latin1')
  }

  destroy(): void {
    this.socket.destroy()
  }
}

function parseAnswers(bytes: Buffer): Answer[] {
  const answers: Answer[] = []
  let at = 0
  for (;;) {
    const end = bytes.indexOf('\r\n\r\n', at)
    if (end === -1) return answers
    const head = bytes.toString('latin1', at, end)
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0)
    if (bytes.length < end + 4 + length) return answers
    answers.push({
      head,
      status: Number(head.slice(9, 12)),
      body: bytes.toString('utf8', end + 4, end + 4 + length),
    })
    at = end + 4 + length
  }
}

/** The parsed JSON body of an answer. */
const json = (answer: Answer): { id?: string; status?: string; error?: { code: string } } =>
  JSON.parse(answer.body) as { id?: string; status?: string; error?: { code: string } }

function post(body: string, extra = ''): string {
  return (
    `POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${extra}` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  )
}

// The fast path writes its own headers in lower case; node:http writes `Date:`, `Connection:`.
const byFastPath = (answer: Answer): boolean => answer.head.includes('\r\ndate: ')
const byNode = (answer: Answer): boolean => answer.head.includes('\r\nDate: ')

const hubs: TestHub[] = []
const clients: RawClient[] = []
afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy()
  for (const hub of hubs.splice(0)) await hub.close()
})

async function hub(options: Parameters<typeof startHub>[0] = {}): Promise<TestHub> {
  const started = await startHub({ epoch: 'e1', ...options })
  hubs.push(started)
  return started
}

function client(target: TestHub): RawClient {
  const c = new RawClient(Number(new URL(target.url).port))
  clients.push(c)
  return c
}

describe('the publish fast path', () => {
  it('answers a plain publish with exact bytes and delivers the event', async () => {
    const h = await hub()
    const stream = await openStream(`${h.url}/events?topic=news`)
    await stream.waitForText('id: e1-0\n\n')
    const c = client(h)
    await c.send(post('{"topic":"news","event":"note","data":"hi"}'))
    const [answer] = await c.answers(1)
    expect(answer!.head).toMatch(
      /^HTTP\/1\.1 200 OK\r\ncontent-type: application\/json; charset=utf-8\r\ncontent-length: 34\r\ncache-control: no-store\r\ndate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\r\nconnection: keep-alive\r\nkeep-alive: timeout=5$/,
    )
    expect(answer!.body).toBe('{"id":"e1-1","localConnections":1}')
    await stream.waitForText('event: note\nid: e1-1\ndata: hi\n\n')
    stream.close()
  })

  it('answers with the same JSON headers as node:http (a publish, a refusal, a 429)', async () => {
    // Two tokens: the refusal and the publish take one each, the third publish gets 429.
    const fast = await hub({
      publishRatePerSecond: 1,
      publishBurst: 2,
      allowAnonymousPublish: true,
    })
    const node = await hub({
      publishRatePerSecond: 1,
      publishBurst: 2,
      allowAnonymousPublish: true,
      fastPath: false,
    })
    // Header names in lower case -> value, without what differs on purpose (date, keep-alive).
    const jsonHeaders = (answer: Answer): Record<string, string> =>
      Object.fromEntries(
        answer.head
          .split('\r\n')
          .slice(1)
          .map((line): [string, string] => [
            line.slice(0, line.indexOf(':')).toLowerCase(),
            line.slice(line.indexOf(':') + 1).trim(),
          ])
          .filter(([name]) =>
            ['content-type', 'content-length', 'cache-control', 'retry-after'].includes(name),
          ),
      )
    const requests = [
      post('{"data":1}'),
      post('{"topic":"t","data":1}'),
      post('{"topic":"t","data":2}'),
    ]
    const answers = async (target: TestHub): Promise<Answer[]> => {
      const c = client(target)
      for (const request of requests) await c.send(request)
      return c.answers(requests.length)
    }
    const [viaFast, viaNode] = [await answers(fast), await answers(node)]
    expect(viaFast.map((a) => a.status)).toEqual([400, 200, 429])
    expect(viaFast.every(byFastPath)).toBe(true)
    expect(viaNode.every(byNode)).toBe(true)
    expect(viaFast.map(jsonHeaders)).toEqual(viaNode.map(jsonHeaders))
    expect(jsonHeaders(viaFast[1]!)['content-type']).toBe('application/json; charset=utf-8')
  })

  it('answers pipelined publishes in order, then hands the connection to node:http', async () => {
    const h = await hub()
    const stream = await openStream(`${h.url}/events?topic=t`)
    await stream.waitForText('id: e1-0\n\n')
    const c = client(h)
    // Three publishes and a GET in one write; then a publish after the GET.
    await c.send(
      post('{"topic":"t","data":"1"}') +
        post('{"topic":"t","data":"2"}') +
        post('{"topic":"t","data":"3"}') +
        'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' +
        post('{"topic":"t","data":"4"}'),
    )
    const answers = await c.answers(5)
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200])
    expect(answers.slice(0, 3).map((a) => json(a).id)).toEqual(['e1-1', 'e1-2', 'e1-3'])
    expect(answers.slice(0, 3).every(byFastPath)).toBe(true)
    // From the first request it does not take, node:http answers everything on the connection.
    expect(byNode(answers[3]!)).toBe(true)
    expect(JSON.parse(answers[3]!.body).status).toBe('ok')
    expect(byNode(answers[4]!)).toBe(true)
    expect(JSON.parse(answers[4]!.body).id).toBe('e1-4')
    expect((await stream.waitForEvents(4)).map((e) => e.data)).toEqual(['1', '2', '3', '4'])
    stream.close()
  })

  it('gives the same answer to a request however it is split across writes', async () => {
    const h = await hub()
    const c = client(h)
    const bytes = Buffer.from(post('{"topic":"split","data":"é"}'))
    for (const part of [bytes.subarray(0, 7), bytes.subarray(7, 60), bytes.subarray(60)])
      await c.send(part)
    const [answer] = await c.answers(1)
    expect(answer!.status).toBe(200)
    expect(JSON.parse(answer!.body)).toEqual({ id: 'e1-1', localConnections: 0 })
    // The connection still works (whoever holds it now).
    await c.send(post('{"topic":"split","data":"2"}'))
    expect(JSON.parse((await c.answers(2))[1]!.body).id).toBe('e1-2')
  })

  it('refuses bad input with the JSON errors of the slow path, keeping the connection', async () => {
    const h = await hub({ publishKey: 'k'.repeat(32), publishRatePerSecond: 1, publishBurst: 1 })
    const c = client(h)
    const auth = `Authorization: Bearer ${'k'.repeat(32)}\r\n`
    await c.send(post('{"topic":"a","data":1}'))
    await c.send(post('{"topic":"a","data":', auth))
    await c.send(post('{"topic":"a\\nb","data":1}', auth))
    await c.send(post('{"topic":"a","data":1}', auth))
    const answers = await c.answers(4)
    expect(answers.every(byFastPath)).toBe(true)
    expect(answers.map((a) => [a.status, json(a).error?.code])).toEqual([
      [401, 'ERR_SSE_UNAUTHORIZED'],
      [400, 'ERR_SSE_BAD_REQUEST'],
      [400, 'ERR_SSE_INVALID_FIELD'],
      [200, undefined],
    ])
    expect(c.isClosed()).toBe(false)
  })

  it('answers 429 with Retry-After when a publisher goes over its rate', async () => {
    const h = await hub({ publishRatePerSecond: 1, publishBurst: 1, allowAnonymousPublish: true })
    const c = client(h)
    await c.send(post('{"topic":"a","data":1}') + post('{"topic":"a","data":2}'))
    const [first, second] = await c.answers(2)
    expect(first!.status).toBe(200)
    expect(second!.status).toBe(429)
    expect(second!.head).toMatch(/\r\nretry-after: 1\r\n/)
    expect(JSON.parse(second!.body).error.code).toBe('ERR_SSE_RATE_LIMITED')
  })

  // Each of these must reach node:http untouched: the answer is exactly what a hub without the
  // fast path gives (status and body), never one the fast path made up.
  const handedOver: Record<string, string> = {
    'Content-Length and Transfer-Encoding':
      'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 22\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{"topic":"a","data":1}',
    'two Content-Lengths':
      'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 22\r\nContent-Length: 5\r\n\r\n{"topic":"a","data":1}',
    'a chunked body':
      'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n16\r\n{"topic":"a","data":1}\r\n0\r\n\r\n',
    'obsolete line folding':
      'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n x-folded: y\r\nContent-Length: 22\r\n\r\n{"topic":"a","data":1}',
    'a bare LF':
      'POST /publish HTTP/1.1\r\nHost: x\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{"topic":"a","data":1}',
    'a space before the colon':
      'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length : 22\r\n\r\n{"topic":"a","data":1}',
    'no Host': 'POST /publish HTTP/1.1\r\nContent-Length: 22\r\n\r\n{"topic":"a","data":1}',
    'HTTP/1.0':
      'POST /publish HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{"topic":"a","data":1}',
    'a body over maxBodyBytes':
      'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n' +
      'x'.repeat(2000),
    'Proxy-Connection: close':
      'POST /publish HTTP/1.1\r\nHost: x\r\nProxy-Connection: close\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{"topic":"a","data":1}',
    'a trailing tab in Content-Length':
      'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 22\t\r\n\r\n{"topic":"a","data":1}',
    'an unknown route':
      'POST /nope HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{"topic":"a","data":1}',
  }
  it.each(Object.entries(handedOver))(
    'hands a request with %s to node:http, which answers as it would alone',
    async (_, bytes) => {
      const withFront = await hub({ maxBodyBytes: 1000 })
      const without = await hub({ maxBodyBytes: 1000, fastPath: false })
      const [a] = await (async () => {
        const c = client(withFront)
        await c.send(bytes)
        return c.answers(1)
      })()
      const [b] = await (async () => {
        const c = client(without)
        await c.send(bytes)
        return c.answers(1)
      })()
      expect(a).toBeDefined()
      expect(byFastPath(a!)).toBe(false)
      expect([a!.status, a!.body]).toEqual([b!.status, b!.body])
      // And node:http's answer is a JSON one too (a refusal says what is wrong).
      expect(JSON.parse(a!.body)).toBeTypeOf('object')
    },
  )

  it('parses only complete, plain requests (a unit view of the same rule)', () => {
    const limits = { maxHeaderBytes: 16_384, maxBodyBytes: 1_000, maxHeaderCount: 100 }
    const ok = Buffer.from(post('{"topic":"a","data":1}', 'X-Proto: 1\r\nConstructor: x\r\n'))
    const parsed = parseFastRequest(ok, limits)
    expect(parsed.kind).toBe('request')
    if (parsed.kind !== 'request') return
    expect(parsed.length).toBe(ok.length)
    expect(parsed.request.body.toString()).toBe('{"topic":"a","data":1}')
    expect(parsed.request.headers['content-type']).toBe('application/json')
    expect(parsed.request.headers.constructor).toBe('x')
    // `__proto__` as a header name is left to node:http (it would be the prototype here).
    const proto = Buffer.from(post('{}', '__proto__: x\r\n'))
    expect(parseFastRequest(proto, limits).kind).toBe('hand-over')
    // Any prefix of it is incomplete: handed over, never half-answered.
    for (let cut = 1; cut < ok.length; cut += 7)
      expect(parseFastRequest(ok.subarray(0, cut), limits).kind).toBe('hand-over')
    // A head over maxHeaderBytes, a NUL in a value.
    expect(parseFastRequest(ok, { ...limits, maxHeaderBytes: 50 }).kind).toBe('hand-over')
    const nul = Buffer.from(post('{}', 'X-A: a\u0000b\r\n'))
    expect(parseFastRequest(nul, limits).kind).toBe('hand-over')
  })

  it('reads header names in any case and values without their optional whitespace', () => {
    const limits = { maxHeaderBytes: 16_384, maxBodyBytes: 1_000, maxHeaderCount: 100 }
    const raw = Buffer.from(
      'POST /publish HTTP/1.1\r\nHOST:h\r\ncontent-TYPE: \t application/json \t\r\n' +
        'X-Empty:\r\nLast-Event-ID: e1-7\r\nX-Odd-Name: a  b\r\nContent-Length: 2\r\n\r\n{}',
    )
    const parsed = parseFastRequest(raw, limits)
    expect(parsed.kind).toBe('request')
    if (parsed.kind !== 'request') return
    expect(parsed.request.headers).toEqual({
      host: 'h',
      'content-type': 'application/json',
      'x-empty': '',
      'last-event-id': 'e1-7',
      'x-odd-name': 'a  b',
      'content-length': '2',
    })
    // Repeated under another spelling, framing headers in any case, Proxy-Connection, more header
    // lines than allowed, a space before the colon, a bare CR or LF, a DEL, a non-token name:
    // node:http decides.
    for (const extra of [
      'content-length: 2\r\n',
      'TE: trailers\r\n',
      'Transfer-ENCODING: chunked\r\n',
      'Proxy-Connection: close\r\n',
      'X-A: 1\r\n'.repeat(100),
      'X-A : b\r\n',
      'X-A: b\rc\r\n',
      'X-A: b\nX-B: c\r\n',
      'X-A: \u007f\r\n',
      'X(A): b\r\n',
      ' X-A: b\r\n',
    ]) {
      expect(parseFastRequest(Buffer.from(post('{}', extra)), limits).kind, extra).toBe('hand-over')
    }
  })

  it('joins repeated X-Forwarded-For and Forwarded lines with ", " in order, as node:http does', async () => {
    const limits = { maxHeaderBytes: 16_384, maxBodyBytes: 1_000, maxHeaderCount: 100 }
    // One line per proxy (HAProxy adds a line), any spelling, an empty line included.
    const head =
      'GET /events?topic=t HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6 \r\n' +
      'x-forwarded-for:\t203.0.113.7, 10.0.0.2\r\nX-FORWARDED-FOR:\r\nX-Forwarded-For: 198.51.100.2\r\n' +
      'Forwarded: for=192.0.2.60\r\nforwarded: for="[2001:db8::17]"\r\n\r\n'
    const parsed = parseFastRequest(Buffer.from(head, 'latin1'), limits)
    expect(parsed.kind).toBe('request')
    if (parsed.kind !== 'request') return
    const joined = {
      'x-forwarded-for': '6.6.6.6, 203.0.113.7, 10.0.0.2, , 198.51.100.2',
      forwarded: 'for=192.0.2.60, for="[2001:db8::17]"',
    }
    expect(parsed.request.headers).toEqual({ host: 'h', ...joined })
    // node:http's own reading of the same bytes, so the rule cannot drift from it.
    const node = createServer((req, res) => res.end(JSON.stringify(req.headers)))
    await new Promise<void>((resolve) => node.listen(0, '127.0.0.1', resolve))
    try {
      const c = new RawClient((node.address() as AddressInfo).port)
      clients.push(c)
      await c.send(head.replace('\r\n\r\n', '\r\nContent-Length: 0\r\n\r\n'))
      await waitFor(() => c.text().includes('}'), "node:http's answer")
      const seen = JSON.parse(c.text().slice(c.text().indexOf('\r\n\r\n') + 4)) as object
      expect(seen).toMatchObject(joined)
    } finally {
      node.closeAllConnections()
      await new Promise((resolve) => node.close(resolve))
    }
    // Other repeated headers are still node:http's to judge (it keeps the first Host, joins others).
    for (const repeated of ['Host: h2\r\n', 'Last-Event-ID: 1\r\n', 'Authorization: x\r\n'])
      expect(
        parseFastRequest(Buffer.from(post('{}', `${repeated}${repeated}`)), limits).kind,
        repeated,
      ).toBe('hand-over')
  })

  it('closes idle fast-path connections when the hub shuts down', async () => {
    const h = await startHub({ epoch: 'e1' })
    const c = client(h)
    await c.send(post('{"topic":"a","data":1}'))
    expect((await c.answers(1))[0]!.status).toBe(200)
    await h.close()
    await waitFor(() => c.isClosed(), 'the idle connection to close')
  })

  const streamHead =
    /^HTTP\/1\.1 200 OK\r\ncontent-type: text\/event-stream\r\ncache-control: no-cache, no-transform\r\nx-accel-buffering: no\r\ndate: [^\r]+ GMT\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n/

  it('streams GET /events from the socket: exact head, chunks, and the last chunk at the end', async () => {
    const h = await hub()
    const c = client(h)
    await c.send('GET /events?topic=job HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n')
    await waitFor(() => c.text().includes('id: e1-0'), 'the stream to open')
    expect(h.server.hub.subscriberCount('job')).toBe(1)
    await h.publish({ topic: 'job', data: 'half' })
    await h.publish({ topic: 'job', data: 'done', close: true })
    await waitFor(() => c.isClosed(), 'the stream to end and close')
    const text = c.text()
    expect(text).toMatch(streamHead)
    expect(text.replace(streamHead, '')).toBe(
      // The retry and id-only frames of one turn go out as one chunk (one write).
      '17\r\nretry: 2000\n\nid: e1-0\n\n\r\n' +
        '15\r\nid: e1-1\ndata: half\n\n\r\n' +
        '15\r\nid: e1-2\ndata: done\n\n\r\n' +
        '0\r\n\r\n',
    )
  })

  it('refuses a stream the request may not open with the JSON error, on the fast path', async () => {
    const h = await hub({ jwtSecret: 's'.repeat(32), privateTopics: ['p'] })
    const refused = client(h)
    await refused.send('GET /events?topic=p HTTP/1.1\r\nHost: x\r\n\r\n')
    const [answer] = await refused.answers(1)
    expect(byFastPath(answer!)).toBe(true)
    expect(answer!.status).toBe(401)
    expect(json(answer!).error?.code).toBe('ERR_SSE_UNAUTHORIZED')
  })

  it('drops a stream whose client leaves, and one that floods it with input', async () => {
    const h = await hub()
    const leaving = client(h)
    const flooding = client(h)
    for (const c of [leaving, flooding])
      await c.send('GET /events?topic=t HTTP/1.1\r\nHost: x\r\n\r\n')
    await waitFor(() => h.server.hub.subscriberCount('t') === 2, 'two streams')
    leaving.destroy()
    await waitFor(() => h.server.hub.subscriberCount('t') === 1, 'the first stream to close')
    await flooding.send('x'.repeat(64 * 1024))
    await waitFor(() => flooding.isClosed(), 'the flooding stream to be dropped')
    await waitFor(() => h.server.hub.subscriberCount('t') === 0, 'no stream left')
  })

  it('hands a stream request followed by more bytes to node:http', async () => {
    const h = await hub()
    const c = client(h)
    await c.send(
      'GET /events?topic=t HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
    )
    await waitFor(() => c.text().includes('id: e1-0'), 'the stream to open')
    // node:http's head (`Date:`, keep-alive), not the fast path's.
    expect(c.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\nDate: /)
    expect(c.text()).not.toContain('connection: close')
  })

  it('ends fast-path streams when the hub shuts down', async () => {
    const h = await startHub({ epoch: 'e1' })
    const c = client(h)
    await c.send('GET /events?topic=t HTTP/1.1\r\nHost: x\r\n\r\n')
    await waitFor(() => c.text().includes('id: e1-0'), 'the stream to open')
    await h.close()
    await waitFor(() => c.isClosed(), 'the stream to close')
    expect(c.text().endsWith('0\r\n\r\n')).toBe(true)
  })
})
