import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Publication, PublishRequest } from '../../src/broker/broker.js'
import { MemoryBroker } from '../../src/broker/memory.js'
import { createHubServer, type HubServerOptions } from '../../src/server/server.js'
import {
  headerOf,
  RawConnection,
  type ParsedResponses,
  type RawResponse,
  type WritePlan,
} from '../helpers/raw-http.js'

/*
 * A differential test of the hub server's two HTTP fronts: the socket-level fast path
 * (`fastPath: true`) and node:http alone (`fastPath: false`) must do the same with any bytes. Each
 * case sends the exact same bytes over a raw socket to one server of each kind and compares what a
 * client and the hub can observe: the answers (status, error code), the events published, whether
 * the connection was closed, and what a later request on the same connection gets (a probe
 * publish, sent once the case's answers are in, when the connection is still open).
 *
 * Publications are seen in-process at the broker (a recording MemoryBroker): exact and complete
 * for every topic, client id or `all`, with nothing to subscribe first. A case ends when the server
 * closes, or after a quiet period (300 ms without a byte: local answers take well under 1 ms;
 * see RawConnection.read), or, for timeout cases, on the close the timeout must cause (a bounded
 * wait). Each case gets a fresh pair of servers (about 1 ms to start), so no case sees another's
 * events; cases run five at a time.
 */

/** A memory broker that keeps every publication: what the hub published, seen in-process. */
class RecordingBroker extends MemoryBroker {
  readonly published: Publication[] = []
  // The hub's publish paths (sync and async) both end here.
  override publishNow(request: PublishRequest): Publication {
    const publication = super.publishNow(request)
    this.published.push(publication)
    return publication
  }
}

/** What a case observed on one front, without what may differ (ids, dates, header order). */
interface Outcome {
  /**
   * The answers in order: the status, then the JSON error code, `stream [data...]` for an event
   * stream (the data of its events so far), `cut off` for an answer that stopped mid-body.
   */
  readonly answers: string[]
  /** The events published, as `keys:data`. */
  readonly published: string[]
  /** The server closed (or reset) the connection. */
  readonly closed: boolean
  /** Bytes the server sent that are not an HTTP response (Latin-1). */
  readonly garbage: string
}

const KEY = 'k'
const TIMEOUTS = { headersTimeoutMs: 1_500, requestTimeoutMs: 3_000 } as const

type Front = 'fast' | 'node'

async function startServer(
  front: Front,
  options: HubServerOptions,
): Promise<{ port: number; broker: RecordingBroker; close(): Promise<void> }> {
  const broker = new RecordingBroker()
  const server = createHubServer({
    heartbeatMs: null,
    // Every case sends from 127.0.0.1: no rate limit to carry over from one request to the next.
    publishRatePerSecond: null,
    ...TIMEOUTS,
    ...options,
    broker,
    fastPath: front === 'fast',
  })
  const address = await server.listen(0, '127.0.0.1')
  return { port: address.port, broker, close: () => server.close() }
}

function answerOf(response: RawResponse): string {
  const type = headerOf(response, 'content-type') ?? ''
  if (type.startsWith('text/event-stream')) {
    const data = response.body
      .toString('utf8')
      .split('\n')
      .filter((line) => line.startsWith('data: '))
      .map((line) => line.slice(6))
    return `${response.status} stream [${data.join(',')}]`
  }
  if (!response.complete) return `${response.status} cut off`
  if (response.body.length === 0) return String(response.status)
  try {
    const json = JSON.parse(response.body.toString('utf8')) as {
      error?: { code?: string }
      status?: string
    }
    if (json.error?.code !== undefined) return `${response.status} ${json.error.code}`
    if (json.status !== undefined) return `${response.status} status ${json.status}`
    return String(response.status)
  } catch {
    return `${response.status} not json`
  }
}

/** How a case is played: what is sent, how, and when reading stops. */
interface Play {
  readonly bytes: Buffer
  readonly write: WritePlan
  /** End our side after writing (a half-close). */
  readonly halfClose: boolean
  /** Wait for the server to close (a timeout case) instead of a quiet period. */
  readonly untilClose: boolean
  /** After the answers, send {@link probe} on the same connection if it is still open. */
  readonly probe: Buffer | null
  readonly until?: (parsed: ParsedResponses) => boolean
}

async function play(port: number, broker: RecordingBroker, p: Play): Promise<Outcome> {
  const connection = await RawConnection.open(port)
  try {
    await connection.write(p.bytes, p.write)
    if (p.halfClose) connection.halfClose()
    let exchange = await connection.read(
      p.untilClose
        ? // node:http checks its timeouts once a second: the request timeout, plus that, plus slack.
          { quietMs: null, deadlineMs: TIMEOUTS.requestTimeoutMs + 3_000 }
        : p.until === undefined
          ? {}
          : { until: p.until },
    )
    const last = exchange.responses.at(-1)
    const streaming = last !== undefined && !last.complete
    if (p.probe !== null && !exchange.closed && !streaming) {
      await connection.write(p.probe)
      exchange = await connection.read()
    }
    return {
      answers: exchange.responses.map(answerOf),
      published: broker.published.map((e) => `${e.keys.join('+')}:${e.data}`),
      closed: exchange.closed,
      garbage: exchange.rest.toString('latin1'),
    }
  } finally {
    connection.destroy()
  }
}

/** Plays `p` against a fresh server of each front, both at once. */
async function differential(
  options: HubServerOptions,
  p: Play,
): Promise<{ fast: Outcome; node: Outcome }> {
  const [fast, node] = await Promise.all([
    startServer('fast', options),
    startServer('node', options),
  ])
  try {
    const [a, b] = await Promise.all([
      play(fast.port, fast.broker, p),
      play(node.port, node.broker, p),
    ])
    return { fast: a, node: b }
  } finally {
    await Promise.all([fast.close(), node.close()])
  }
}

// ---------------------------------------------------------------------------------------------
// Building requests.

const json = (data: string, topic = 't'): string => `{"topic":"${topic}","data":"${data}"}`
const len = (body: string): number => Buffer.byteLength(body)
const AUTH = `Authorization: Bearer ${KEY}\r\n`

/** A valid `POST /publish` of `data` to topic `t`, with `extra` header lines (CRLF-ended). */
function publish(data: string, extra = ''): string {
  const body = json(data)
  return (
    `POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${extra}` +
    `Content-Length: ${len(body)}\r\n\r\n${body}`
  )
}

/** A publish whose head lines are exactly `lines` (no Host or Content-Length added). */
function raw(lines: string[], body: string, requestLine = 'POST /publish HTTP/1.1'): string {
  return [requestLine, ...lines].join('\r\n') + '\r\n\r\n' + body
}

const B1 = json('1')
const CT = 'Content-Type: application/json'
const chunked = (body: string): string => `${len(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`
const EVENTS = 'GET /events?topic=t HTTP/1.1\r\nHost: x\r\n\r\n'
const HEALTHZ = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'
const BATCH_BODY = `[${json('b1')},${json('b2')}]`
const BATCH = `POST /publish/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${len(BATCH_BODY)}\r\n\r\n${BATCH_BODY}`

// ---------------------------------------------------------------------------------------------
// The cases.

interface Case {
  readonly bytes: string | Buffer
  /** The server has `publishKey: 'k'` (the probe then carries the key). */
  readonly keyed?: boolean
  readonly options?: HubServerOptions
  readonly write?: WritePlan
  readonly halfClose?: boolean
  readonly untilClose?: boolean
  /** Send the probe publish after the answers (default true). */
  readonly probe?: boolean
  /** What each front's outcome must satisfy besides agreeing (an invariant of the case). */
  readonly check?: (outcome: Outcome) => void
}

/** No event reached the hub (auth was not bypassed, a smuggled request did not run). */
const nothingPublishedBeforeProbe = (outcome: Outcome): void =>
  expect(outcome.published.filter((e) => e !== 't:probe')).toEqual([])

const cases: Record<string, Case> = {
  // Baselines.
  'a plain publish': {
    bytes: publish('1'),
    check: (o) => expect(o.answers).toEqual(['200', '200']),
  },
  'a form-encoded publish': {
    bytes: raw(
      ['Host: x', 'Content-Type: application/x-www-form-urlencoded', 'Content-Length: 14'],
      'topic=t&data=1',
    ),
  },
  'a batch': { bytes: BATCH },

  // Content-Length with Transfer-Encoding (request smuggling: CL.TE and TE.CL).
  'Content-Length then Transfer-Encoding: chunked': {
    bytes: raw(
      ['Host: x', CT, `Content-Length: ${len(chunked(B1))}`, 'Transfer-Encoding: chunked'],
      chunked(B1),
    ),
    check: nothingPublishedBeforeProbe,
  },
  'Transfer-Encoding: chunked then Content-Length (a smuggled publish in the body)': {
    bytes: raw(
      ['Host: x', CT, 'Transfer-Encoding: chunked', 'Content-Length: 3'],
      '0\r\n\r\n' + publish('smuggled'),
    ),
  },
  'Transfer-Encoding : chunked (space before the colon) with Content-Length': {
    bytes: raw(['Host: x', CT, 'Transfer-Encoding : chunked', `Content-Length: ${len(B1)}`], B1),
  },

  // Transfer-Encoding spellings, lists and duplicates.
  'Transfer-Encoding: chunked': {
    bytes: raw(['Host: x', CT, 'Transfer-Encoding: chunked'], chunked(B1)),
  },
  'Transfer-Encoding: Chunked': {
    bytes: raw(['Host: x', CT, 'Transfer-Encoding: Chunked'], chunked(B1)),
  },
  'TRANSFER-ENCODING: CHUNKED': {
    bytes: raw(['Host: x', CT, 'TRANSFER-ENCODING: CHUNKED'], chunked(B1)),
  },
  'Transfer-Encoding: chunked, chunked': {
    bytes: raw(['Host: x', CT, 'Transfer-Encoding: chunked, chunked'], chunked(B1)),
  },
  'Transfer-Encoding: gzip, chunked': {
    bytes: raw(['Host: x', CT, 'Transfer-Encoding: gzip, chunked'], chunked(B1)),
  },
  'Transfer-Encoding: chunked, gzip (chunked not last)': {
    bytes: raw(
      ['Host: x', CT, 'Transfer-Encoding: chunked, gzip', `Content-Length: ${len(B1)}`],
      B1,
    ),
  },
  'Transfer-Encoding: identity with Content-Length': {
    bytes: raw(['Host: x', CT, 'Transfer-Encoding: identity', `Content-Length: ${len(B1)}`], B1),
  },
  'Transfer-Encoding: chunked twice': {
    bytes: raw(
      ['Host: x', CT, 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'],
      chunked(B1),
    ),
  },
  'Transfer-Encoding: gzip then Transfer-Encoding: chunked': {
    bytes: raw(
      ['Host: x', CT, 'Transfer-Encoding: gzip', 'Transfer-Encoding: chunked'],
      chunked(B1),
    ),
  },
  'Transfer-Encoding with a tab before the value': {
    bytes: raw(['Host: x', CT, 'Transfer-Encoding:\tchunked'], chunked(B1)),
  },

  // Content-Length values.
  'two equal Content-Lengths': {
    bytes: raw(['Host: x', CT, `Content-Length: ${len(B1)}`, `Content-Length: ${len(B1)}`], B1),
  },
  'two different Content-Lengths': {
    bytes: raw(['Host: x', CT, `Content-Length: ${len(B1)}`, 'Content-Length: 5'], B1),
    check: nothingPublishedBeforeProbe,
  },
  'Content-Length and content-length (one name, two spellings)': {
    bytes: raw(['Host: x', CT, `Content-Length: ${len(B1)}`, `content-length: ${len(B1)}`], B1),
  },
  'a Content-Length list "24, 24"': {
    bytes: raw(['Host: x', CT, `Content-Length: ${len(B1)}, ${len(B1)}`], B1),
  },
  'Content-Length: +24': { bytes: raw(['Host: x', CT, `Content-Length: +${len(B1)}`], B1) },
  'Content-Length: -5': { bytes: raw(['Host: x', CT, 'Content-Length: -5'], B1) },
  'Content-Length: 2 4 (a space inside)': {
    bytes: raw(['Host: x', CT, 'Content-Length: 2 4'], B1),
  },
  'Content-Length with spaces around the value': {
    bytes: raw(['Host: x', CT, `Content-Length:   ${len(B1)}   `], B1),
  },
  'Content-Length: 0024 (leading zeros)': {
    bytes: raw(['Host: x', CT, `Content-Length: 00${len(B1)}`], B1),
  },
  'Content-Length: 99999999999999999999': {
    bytes: raw(['Host: x', CT, 'Content-Length: 99999999999999999999'], B1),
  },
  'Content-Length: 0x18': { bytes: raw(['Host: x', CT, 'Content-Length: 0x18'], B1) },
  'an empty Content-Length': { bytes: raw(['Host: x', CT, 'Content-Length:'], B1) },
  'Content-Length with a trailing tab': {
    bytes: raw(['Host: x', CT, `Content-Length: ${len(B1)}\t`], B1),
    check: (o) =>
      expect([o.answers[0], o.published, o.closed]).toEqual(['400 ERR_SSE_BAD_REQUEST', [], true]),
  },
  'Content-Length with a trailing vertical tab': {
    bytes: raw(['Host: x', CT, `Content-Length: ${len(B1)}\v`], B1),
  },
  'Content-Length with a tab before the value': {
    bytes: raw(['Host: x', CT, `Content-Length:\t${len(B1)}`], B1),
  },
  'a body over maxBodyBytes': {
    bytes: raw(['Host: x', CT, 'Content-Length: 2000'], 'x'.repeat(2_000)),
    options: { maxBodyBytes: 1_000 },
  },
  'a head over maxHeaderBytes': {
    bytes: publish('1', `X-Big: ${'b'.repeat(20_000)}\r\n`),
  },
  'Content-Length : 24 (a space before the colon)': {
    bytes: raw(['Host: x', CT, `Content-Length : ${len(B1)}`], B1),
  },

  // Line endings, folding and odd bytes in the head.
  'obsolete line folding of an ordinary header': {
    bytes: raw(['Host: x', CT, 'X-A: a', ' folded', `Content-Length: ${len(B1)}`], B1),
  },
  'obsolete line folding of Content-Length': {
    bytes: raw(['Host: x', CT, 'Content-Length:', ` ${len(B1)}`], B1),
  },
  'a bare CR ending a header line': {
    bytes: `POST /publish HTTP/1.1\r\nHost: x\r${CT}\r\nContent-Length: ${len(B1)}\r\n\r\n${B1}`,
  },
  'a bare CR inside a header value': {
    bytes: raw(['Host: x', CT, 'X-A: a\rb', `Content-Length: ${len(B1)}`], B1),
  },
  'bare LF line endings throughout': {
    bytes: `POST /publish HTTP/1.1\nHost: x\n${CT}\nContent-Length: ${len(B1)}\n\n${B1}`,
  },
  'one bare LF line ending': {
    bytes: `POST /publish HTTP/1.1\r\nHost: x\n${CT}\r\nContent-Length: ${len(B1)}\r\n\r\n${B1}`,
  },
  'a bare LF ending the request line': {
    bytes: `POST /publish HTTP/1.1\nHost: x\r\n${CT}\r\nContent-Length: ${len(B1)}\r\n\r\n${B1}`,
  },
  'a NUL in a header value': {
    bytes: raw(['Host: x', CT, 'X-A: a\0b', `Content-Length: ${len(B1)}`], B1),
  },
  'a NUL in a header name': {
    bytes: raw(['Host: x', CT, 'X-\0A: b', `Content-Length: ${len(B1)}`], B1),
  },
  'a DEL in a header value': {
    bytes: raw(['Host: x', CT, 'X-A: a\x7fb', `Content-Length: ${len(B1)}`], B1),
  },
  'a DEL in the request target': {
    bytes: raw(['Host: x', CT, `Content-Length: ${len(B1)}`], B1, 'POST /publish\x7f HTTP/1.1'),
  },
  'obs-text (0xE9) in a header value': {
    bytes: Buffer.concat([
      Buffer.from('POST /publish HTTP/1.1\r\nHost: x\r\nX-A: \xe9\r\n', 'latin1'),
      Buffer.from(`${CT}\r\nContent-Length: ${len(B1)}\r\n\r\n${B1}`),
    ]),
  },
  'a header line with no colon': {
    bytes: raw(['Host: x', CT, 'X-A', `Content-Length: ${len(B1)}`], B1),
  },
  'a header line starting with whitespace (first header)': {
    bytes: raw([' Host: x', CT, `Content-Length: ${len(B1)}`], B1),
  },

  // Request lines.
  'an absolute-form target': {
    bytes: raw(['Host: x', CT, `Content-Length: ${len(B1)}`], B1, 'POST http://x/publish HTTP/1.1'),
  },
  'a lower-case method': {
    bytes: raw(['Host: x', CT, `Content-Length: ${len(B1)}`], B1, 'post /publish HTTP/1.1'),
  },
  'two spaces after the method': {
    bytes: raw(['Host: x', CT, `Content-Length: ${len(B1)}`], B1, 'POST  /publish HTTP/1.1'),
  },
  'HTTP/1.0': {
    bytes: raw(['Host: x', CT, `Content-Length: ${len(B1)}`], B1, 'POST /publish HTTP/1.0'),
  },
  'HTTP/1.0 with Connection: keep-alive': {
    bytes: raw(
      ['Host: x', CT, 'Connection: keep-alive', `Content-Length: ${len(B1)}`],
      B1,
      'POST /publish HTTP/1.0',
    ),
  },
  'HTTP/1.2': {
    bytes: raw(['Host: x', CT, `Content-Length: ${len(B1)}`], B1, 'POST /publish HTTP/1.2'),
  },
  'no Host': { bytes: raw([CT, `Content-Length: ${len(B1)}`], B1) },
  'two Hosts': { bytes: raw(['Host: x', 'Host: y', CT, `Content-Length: ${len(B1)}`], B1) },
  'GET /events without Host': { bytes: 'GET /events?topic=t HTTP/1.1\r\n\r\n', probe: false },
  'GET /events with a body': {
    bytes: 'GET /events?topic=t HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello',
    probe: false,
  },

  // Connection management.
  'Connection: close': { bytes: publish('1', 'Connection: close\r\n') },
  'Connection: Close, keep-alive': { bytes: publish('1', 'Connection: Close, keep-alive\r\n') },
  'Proxy-Connection: close': {
    bytes: publish('1', 'Proxy-Connection: close\r\n'),
    // node:http reads it as `Connection: close`: answered, then closed (no probe answer).
    check: (o) => expect([o.answers, o.closed]).toEqual([['200'], true]),
  },
  'Connection: Upgrade with Upgrade: websocket': {
    bytes: publish('1', 'Connection: Upgrade\r\nUpgrade: websocket\r\n'),
  },
  'Upgrade: h2c without Connection: upgrade': { bytes: publish('1', 'Upgrade: h2c\r\n') },
  'GET /events with Connection: close': {
    bytes: 'GET /events?topic=t HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  },
  'GET /events with Proxy-Connection: close': {
    bytes: 'GET /events?topic=t HTTP/1.1\r\nHost: x\r\nProxy-Connection: close\r\n\r\n',
  },
  'GET /events written byte by byte': { bytes: EVENTS, write: 'bytes' },
  'a publish, then our side half-closes at once': {
    bytes: publish('1'),
    halfClose: true,
    check: (o) => expect(o.answers).toEqual(['200']),
  },
  'a batch, then our side half-closes at once': { bytes: BATCH, halfClose: true },
  'a batch + a publish, then a half-close': { bytes: BATCH + publish('1'), halfClose: true },
  'a batch + GET /healthz, then a half-close': {
    bytes: BATCH + HEALTHZ,
    halfClose: true,
    check: (o) => expect(o.answers).toEqual(['200', '200 status ok']),
  },
  'keyed: a publish without the key + GET /healthz, then a half-close': {
    bytes: publish('1') + HEALTHZ,
    keyed: true,
    halfClose: true,
    check: (o) => expect(o.answers).toEqual(['401 ERR_SSE_UNAUTHORIZED', '200 status ok']),
  },
  'a chunked publish, then a half-close': {
    bytes: raw(['Host: x', CT, 'Transfer-Encoding: chunked'], chunked(B1)),
    halfClose: true,
  },
  'GET /events, then a half-close': { bytes: EVENTS, halfClose: true },
  'a publish + GET /events, then a half-close': { bytes: publish('1') + EVENTS, halfClose: true },
  'an incomplete publish, then a half-close': {
    bytes: 'POST /publish HTTP/1.1\r\nHost: x\r\n',
    halfClose: true,
  },
  'a publish written byte by byte, then a half-close': {
    bytes: publish('1'),
    write: 'bytes',
    halfClose: true,
    check: (o) => expect(o.answers).toEqual(['200']),
  },

  // Pipelining.
  'publish + publish': {
    bytes: publish('1') + publish('2'),
    check: (o) => expect(o.published).toEqual(['t:1', 't:2', 't:probe']),
  },
  'publish + batch + publish': { bytes: publish('1') + BATCH + publish('2') },
  'publish + GET /healthz + publish': { bytes: publish('1') + HEALTHZ + publish('2') },
  'publish + GET /events (a stream last)': { bytes: publish('1') + EVENTS },
  'GET /events + publish (a stream followed by more bytes)': {
    bytes: EVENTS + publish('1'),
    check: (o) => expect(o.answers[0]).toBe('200 stream [1]'),
  },
  'GET /events + GET /events': { bytes: EVENTS + EVENTS },
  'publish + an incomplete publish head': {
    bytes: publish('1') + 'POST /publish HTTP/1.1\r\nHost: x\r\n',
    probe: false,
  },

  // Writes split apart.
  'a publish written byte by byte': { bytes: publish('1'), write: 'bytes' },
  'publish + publish written byte by byte': { bytes: publish('1') + publish('2'), write: 'bytes' },
  'publish + GET /events written byte by byte': { bytes: publish('1') + EVENTS, write: 'bytes' },
  'a publish cut inside its blank line': {
    bytes: publish('1'),
    write: [publish('1').indexOf('\r\n\r\n') + 2],
  },

  // Bodies shorter and longer than announced; timeouts.
  'a body shorter than Content-Length, then silence': {
    bytes: raw(['Host: x', CT, `Content-Length: ${len(B1) + 10}`], B1),
    untilClose: true,
    probe: false,
    check: (o) => {
      expect(o.closed).toBe(true)
      for (const answer of o.answers) expect(answer).toMatch(/^408 /)
      expect(o.published).toEqual([])
    },
  },
  'an unfinished head, then silence': {
    bytes: 'POST /publish HTTP/1.1\r\nHost: x\r\n',
    untilClose: true,
    probe: false,
    check: (o) => expect(o.closed).toBe(true),
  },
  'a body longer than Content-Length (the rest is the next request)': {
    bytes: raw(['Host: x', CT, `Content-Length: ${len(B1)}`], B1 + publish('2')),
    check: (o) => expect(o.published).toEqual(['t:1', 't:2', 't:probe']),
  },
  'a publish followed by garbage in one write': {
    bytes: publish('1') + 'GARBAGE\r\n\r\n',
    check: (o) => expect(o.answers).toEqual(['200', '400 ERR_SSE_BAD_REQUEST']),
  },

  // Expect.
  'Expect: 100-continue with the body at once': {
    bytes: raw(['Host: x', CT, 'Expect: 100-continue', `Content-Length: ${len(B1)}`], B1),
  },
  'Expect: something-else': {
    bytes: raw(['Host: x', CT, 'Expect: something-else', `Content-Length: ${len(B1)}`], B1),
  },

  // Chunked bodies.
  'a chunk extension': {
    bytes: raw(
      ['Host: x', CT, 'Transfer-Encoding: chunked'],
      `${len(B1).toString(16)};ext=1\r\n${B1}\r\n0\r\n\r\n`,
    ),
  },
  'a trailer': {
    bytes: raw(
      ['Host: x', CT, 'Transfer-Encoding: chunked'],
      `${len(B1).toString(16)}\r\n${B1}\r\n0\r\nX-T: 1\r\n\r\n`,
    ),
  },
  'a chunk size that is not hex': {
    bytes: raw(['Host: x', CT, 'Transfer-Encoding: chunked'], `zz\r\n${B1}\r\n0\r\n\r\n`),
  },
  'a chunk size with 0x': {
    bytes: raw(
      ['Host: x', CT, 'Transfer-Encoding: chunked'],
      `0x${len(B1).toString(16)}\r\n${B1}\r\n0\r\n\r\n`,
    ),
  },
  'a chunk size that overflows': {
    bytes: raw(
      ['Host: x', CT, 'Transfer-Encoding: chunked'],
      `1${'0'.repeat(20)}\r\n${B1}\r\n0\r\n\r\n`,
    ),
  },
  'a chunk without its CRLF': {
    bytes: raw(
      ['Host: x', CT, 'Transfer-Encoding: chunked'],
      `${len(B1).toString(16)}\r\n${B1}0\r\n\r\n`,
    ),
  },
  'chunks split into single bytes': {
    bytes: raw(
      ['Host: x', CT, 'Transfer-Encoding: chunked'],
      [...B1].map((c) => `1\r\n${c}\r\n`).join('') + '0\r\n\r\n',
    ),
  },

  // Authorization on a keyed server: never bypassed.
  'keyed: no Authorization': {
    bytes: publish('1'),
    keyed: true,
    check: nothingPublishedBeforeProbe,
  },
  'keyed: the key': {
    bytes: publish('1', AUTH),
    keyed: true,
    check: (o) => expect(o.published).toEqual(['t:1', 't:probe']),
  },
  'keyed: a wrong key, then the key': {
    bytes: publish('1', `Authorization: Bearer x\r\n${AUTH}`),
    keyed: true,
    check: nothingPublishedBeforeProbe,
  },
  // node:http keeps the first of repeated Authorization headers: the key was sent, first.
  'keyed: the key, then a wrong key': {
    bytes: publish('1', `${AUTH}Authorization: Bearer x\r\n`),
    keyed: true,
  },
  'keyed: the key twice': { bytes: publish('1', AUTH + AUTH), keyed: true },
  'keyed: a folded Authorization': {
    bytes: publish('1', 'Authorization: Bearer\r\n k\r\n'),
    keyed: true,
    check: nothingPublishedBeforeProbe,
  },
  'keyed: Authorization with a NUL after the key': {
    bytes: publish('1', `Authorization: Bearer ${KEY}\0\r\n`),
    keyed: true,
    check: nothingPublishedBeforeProbe,
  },
  'keyed: authorization in lower case, tabs around the value': {
    bytes: publish('1', `authorization:\tBearer ${KEY}\t\r\n`),
    keyed: true,
  },
  'keyed: 2,100 headers, then the key': {
    bytes: publish('1', Array.from({ length: 2_100 }, (_, i) => `X-${i}: 1\r\n`).join('') + AUTH),
    keyed: true,
    options: { maxHeaderBytes: 64 * 1024 },
    // More header lines than maxHeaderCount (100): refused on both fronts, never half read.
    check: (o) => {
      expect(o.answers[0]).toBe('431 ERR_SSE_HEADERS_TOO_LARGE')
      nothingPublishedBeforeProbe(o)
    },
  },

  // Forwarding headers behind a trusted proxy: the per-IP publish rate is keyed by the client
  // address, so the answers show which address each front read. Repeated X-Forwarded-For lines
  // are one list (joined with ", " by node:http, and by the fast front, which takes them).
  'behind a proxy: two X-Forwarded-For lines, then the same client in one line': {
    bytes:
      publish('1', 'X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 203.0.113.7\r\n') +
      publish('2', 'X-Forwarded-For: 6.6.6.6, 203.0.113.7\r\n') +
      publish('3', 'X-Forwarded-For: 6.6.6.6\r\n'),
    options: {
      allowAnonymousPublish: true,
      publishRatePerSecond: 1,
      publishBurst: 1,
      trustProxy: ['loopback'],
    },
    // 203.0.113.7 (the rightmost untrusted) twice: its second publish waits; 6.6.6.6 and the
    // probe (127.0.0.1, no header) are other clients.
    check: (o) => {
      expect(o.answers.map((a) => a.slice(0, 3))).toEqual(['200', '429', '200', '200'])
      expect(o.published).toEqual(['t:1', 't:3', 't:probe'])
    },
  },
  'behind a proxy: Forwarded on two lines': {
    bytes:
      publish('1', 'Forwarded: for=6.6.6.6\r\nForwarded: for="203.0.113.7:4711"\r\n') +
      publish('2', 'Forwarded: for=203.0.113.7\r\n'),
    options: {
      allowAnonymousPublish: true,
      publishRatePerSecond: 1,
      publishBurst: 1,
      trustProxy: ['loopback'],
    },
    check: (o) => expect(o.answers.map((a) => a.slice(0, 3))).toEqual(['200', '429', '200']),
  },

  // Bodies the JSON parser or the hub must refuse cleanly.
  'JSON nested 100,000 deep (unclosed)': {
    bytes: raw(['Host: x', CT, 'Content-Length: 100000'], '['.repeat(100_000)),
    check: (o) => expect(o.answers[0]).toBe('400 ERR_SSE_BAD_REQUEST'),
  },
  'JSON data nested 100,000 deep': {
    bytes: (() => {
      const body = `{"topic":"t","data":${'['.repeat(100_000)}${']'.repeat(100_000)}}`
      return raw(['Host: x', CT, `Content-Length: ${len(body)}`], body)
    })(),
    check: (o) => expect(o.answers[0]).toBe('400 ERR_SSE_BAD_REQUEST'),
  },
}

/**
 * Differences that are by design, each with its reason and the exact outcome of each front.
 * None today: wherever the fronts differ, one of them has a bug.
 */
const intendedDifferences: Record<string, { reason: string; fast: Outcome; node: Outcome }> = {}

/**
 * Cases that fail today because of a known bug, being fixed in src/ (then the case passes, its
 * `it.fails` fails, and the entry goes).
 */
const knownBugs: Record<string, string> = {}

/** The probe: a valid publish of `probe` to `t` (with the key on a keyed server). */
const probeFor = (keyed: boolean): Buffer => Buffer.from(publish('probe', keyed ? AUTH : ''))

function playOf(c: Case): Play {
  return {
    bytes: typeof c.bytes === 'string' ? Buffer.from(c.bytes, 'latin1') : c.bytes,
    write: c.write ?? 'whole',
    halfClose: c.halfClose === true,
    untilClose: c.untilClose === true,
    probe: c.probe === false || c.halfClose === true ? null : probeFor(c.keyed === true),
  }
}

describe.concurrent('the fast path and node:http answer the same bytes the same way', () => {
  for (const [name, c] of Object.entries(cases)) {
    const test = knownBugs[name] === undefined ? it : it.fails
    test(name, async () => {
      const { fast, node } = await differential(
        c.keyed === true ? { publishKey: KEY, ...c.options } : { ...c.options },
        playOf(c),
      )
      const intended = intendedDifferences[name]
      if (intended !== undefined) {
        expect(fast).toEqual(intended.fast)
        expect(node).toEqual(intended.node)
      } else {
        expect(fast).toEqual(node)
      }
      c.check?.(node)
      c.check?.(fast)
    })
  }
})

// ---------------------------------------------------------------------------------------------
// Generated cases: a valid keyed publish, its head mutated.

/** One edit of the head: on a line (by index, modulo the line count) or at a byte position. */
type Mutation =
  | { readonly op: 'flip-case'; readonly line: number; readonly at: number }
  | { readonly op: 'insert'; readonly line: number; readonly at: number; readonly text: string }
  | { readonly op: 'delete'; readonly line: number; readonly at: number }
  | { readonly op: 'duplicate' | 'remove'; readonly line: number }
  | { readonly op: 'swap'; readonly line: number; readonly other: number }
  | { readonly op: 'add'; readonly line: number; readonly header: string }

const INTERESTING = [
  ' ',
  '\t',
  '\r',
  '\n',
  '\r\n',
  '\r\n ',
  '\0',
  '\x7f',
  '\v',
  ',',
  ':',
  '0',
  '+',
  '-',
  'x',
  '\xe9',
]
const HEADERS = [
  'Transfer-Encoding: chunked',
  'Connection: close',
  'Connection: keep-alive',
  'Proxy-Connection: close',
  'Expect: 100-continue',
  `Content-Length: ${len(json('fc'))}`,
  'Content-Length: 5',
  'Host: y',
  `Authorization: Bearer ${KEY}`,
  'Authorization: Bearer x',
  'Upgrade: websocket',
  'TE: trailers',
  'Origin: http://x',
  'X-A: b',
  'X-Forwarded-For: 203.0.113.1',
  'Forwarded: for=192.0.2.60',
]

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip-case' as const), line: fc.nat(), at: fc.nat() }),
  fc.record({
    op: fc.constant('insert' as const),
    line: fc.nat(),
    at: fc.nat(),
    text: fc.oneof(
      fc.constantFrom(...INTERESTING),
      fc.integer({ min: 0, max: 255 }).map((code) => String.fromCharCode(code)),
    ),
  }),
  fc.record({ op: fc.constant('delete' as const), line: fc.nat(), at: fc.nat() }),
  fc.record({ op: fc.constantFrom('duplicate' as const, 'remove' as const), line: fc.nat() }),
  fc.record({ op: fc.constant('swap' as const), line: fc.nat(), other: fc.nat() }),
  fc.record({
    op: fc.constant('add' as const),
    line: fc.nat(),
    header: fc.constantFrom(...HEADERS),
  }),
)

/** The head lines of a valid keyed publish of `fc` to `t` (the request line first). */
function baseHead(): string[] {
  return [
    'POST /publish HTTP/1.1',
    'Host: x',
    CT,
    `Authorization: Bearer ${KEY}`,
    `Content-Length: ${len(json('fc'))}`,
  ]
}

function mutate(lines: string[], m: Mutation): string[] {
  const out = [...lines]
  const i = m.line % out.length
  const line = out[i]!
  switch (m.op) {
    case 'flip-case': {
      const at = m.at % Math.max(line.length, 1)
      const c = line.charAt(at)
      const flipped = c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()
      out[i] = line.slice(0, at) + flipped + line.slice(at + 1)
      break
    }
    case 'insert': {
      const at = m.at % (line.length + 1)
      out[i] = line.slice(0, at) + m.text + line.slice(at)
      break
    }
    case 'delete': {
      const at = m.at % Math.max(line.length, 1)
      out[i] = line.slice(0, at) + line.slice(at + 1)
      break
    }
    case 'duplicate':
      out.splice(i, 0, line)
      break
    case 'remove':
      // The request line stays (without it there is nothing to compare).
      if (i > 0) out.splice(i, 1)
      break
    case 'swap': {
      const j = m.other % out.length
      if (i > 0 && j > 0) [out[i], out[j]] = [out[j]!, line]
      break
    }
    case 'add':
      out.splice(Math.max(i, 1), 0, m.header)
      break
  }
  return out
}

/** The generated request, then the probe, then `GET /healthz` (whose answer ends the reading). */
function generated(mutations: readonly Mutation[]): Buffer {
  const head = mutations.reduce(mutate, baseHead())
  return Buffer.from(
    head.join('\r\n') + '\r\n\r\n' + json('fc') + publish('probe', AUTH) + HEALTHZ,
    'latin1',
  )
}

const healthzAnswered = (parsed: ParsedResponses): boolean =>
  parsed.responses.some((r) => r.complete && r.body.toString('latin1').includes('"status":"ok"'))

/*
 * While known bugs are open, generated requests avoid their shapes (the table above has a case for
 * each) and the comparison forgives their effect. Set each to false once its bug is fixed.
 */
// Fixed: `Proxy-Connection: close` is node:http's on both fronts.
const AVOID_PROXY_CONNECTION = false
// Fixed: `Content-Length: 25\t` is refused on both fronts.
const AVOID_TRAILING_TAB_IN_CONTENT_LENGTH = false
// Fixed: an error answer waits for the answers owed before it (it used to jump ahead of a
// request still in flight, whose answer was lost).
const FORGIVE_ANSWERS_LOST_BEFORE_A_CLOSING_400 = false

const hitsKnownBug = (bytes: Buffer): boolean => {
  const head = bytes.toString('latin1', 0, bytes.indexOf('{'))
  return (
    (AVOID_PROXY_CONNECTION && /proxy-connection/i.test(head)) ||
    (AVOID_TRAILING_TAB_IN_CONTENT_LENGTH && /content-length:[^\n]*\t\r?\n/i.test(head))
  )
}

/** True when `a` and `b` differ only as that race makes them differ. */
function onlyLostBeforeAClosing400(a: Outcome, b: Outcome): boolean {
  if (!FORGIVE_ANSWERS_LOST_BEFORE_A_CLOSING_400 || !a.closed || !b.closed) return false
  if (JSON.stringify(a.published) !== JSON.stringify(b.published) || a.garbage !== b.garbage)
    return false
  const trim = (answers: string[]): string[] =>
    answers.at(-1) === '400 ERR_SSE_BAD_REQUEST' ? answers.slice(0, -1) : answers
  const [x, y] = [trim(a.answers), trim(b.answers)]
  const [short, long] = x.length <= y.length ? [x, y] : [y, x]
  return short.every((answer, i) => answer === long[i])
}

// DIFF_RUNS=5000 for a longer search (about 12 ms a run); a failure prints its seed and the
// shrunk counterexample.
const RUNS = Number(process.env.DIFF_RUNS ?? 100)

describe('generated: a keyed publish with a mutated head', () => {
  it(
    'gets the same outcome from both fronts, however it is mutated, split or half-closed',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(mutation, { minLength: 1, maxLength: 4 }),
          fc.array(fc.nat({ max: 200 }), { maxLength: 3 }),
          fc.boolean(),
          async (mutations, cuts, halfClose) => {
            const bytes = generated(mutations)
            fc.pre(!hitsKnownBug(bytes))
            const { fast, node } = await differential(
              { publishKey: KEY },
              {
                bytes,
                write: cuts,
                halfClose,
                untilClose: false,
                probe: null,
                until: healthzAnswered,
              },
            )
            if (!onlyLostBeforeAClosing400(fast, node)) expect(fast).toEqual(node)
          },
        ),
        { numRuns: RUNS },
      )
    },
    Math.max(20_000, RUNS * 100),
  )
})
