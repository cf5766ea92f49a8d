/**
 * The fast front's request parser: pure (bytes in, a request or "not mine" out), unit-testable on
 * its own. It takes only what it can parse exactly — a complete, plain HTTP/1.1 `GET` or `POST`
 * in origin form, already in the buffer — and says `hand-over` for everything else, so node:http
 * parses it instead (see fast-front.ts). Smuggling has no way in: a head with Transfer-Encoding,
 * repeated headers, obsolete folding, bare CR or LF, a non-token header name, a Content-Length
 * that is not plain digits, or more header lines than allowed is never taken here. The one
 * exception to "repeated headers": `X-Forwarded-For` and `Forwarded` lines are joined as node:http
 * joins them (see {@link JOINED_NAMES}).
 */
import type { IncomingHttpHeaders } from 'node:http'

/**
 * A request the fast front parsed: complete, plain HTTP/1.1. A class, so that the handlers can
 * take it as it is (its `query()` is a method, not a closure made per request).
 */
export class FastRequest {
  /** The peer's address; the front sets it. */
  remoteAddress: string | undefined = undefined

  constructor(
    readonly method: 'GET' | 'POST',
    /** The path, as sent (no normalisation), without the query. */
    readonly path: string,
    /** The query string, without `?` (empty when none). */
    readonly search: string,
    /** Header names in lower case, each present once (repeated forwarding lines joined). */
    readonly headers: IncomingHttpHeaders & Readonly<Record<string, string>>,
    readonly body: Buffer,
  ) {}

  /** The query, parsed. */
  query(): URLSearchParams {
    return new URLSearchParams(this.search)
  }
}

/** The limits a request must be within to be parsed here (node:http refuses the others). */
export interface FastLimits {
  /** Heads larger than this go to node:http (which answers 431). */
  readonly maxHeaderBytes: number
  /** Bodies larger than this go to node:http (which answers 413). */
  readonly maxBodyBytes: number
  /** Heads with more header lines than this go to node:http (which the server refuses, 431). */
  readonly maxHeaderCount: number
}

/** A parsed request and how many bytes of the buffer it took, or `hand-over`. */
export type Parsed =
  | { readonly kind: 'request'; readonly request: FastRequest; readonly length: number }
  | { readonly kind: 'hand-over' }

const HAND_OVER: Parsed = { kind: 'hand-over' }
// The request line of nearly every publish, matched as bytes before any string is made.
const PUBLISH_LINE = Buffer.from('POST /publish HTTP/1.1\r\n', 'latin1')
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1')
// Method, an origin-form target of visible ASCII, and exactly HTTP/1.1 (1.0 has other keep-alive
// rules: node:http's).
const REQUEST_LINE = /^(GET|POST) (\/[\x21-\x7e]*) HTTP\/1\.1$/
// Byte classes: 3 for RFC 9110 token characters (header names), 2 for the other field-value bytes
// (visible ASCII, obs-text, SP, HTAB), 0 for the rest (CR, LF, NUL, other controls, DEL): a name
// or value with a byte of class 0 is handed to node:http.
const BYTE_CLASS = new Uint8Array(256)
for (let c = 0x20; c <= 0xff; c++) if (c !== 0x7f) BYTE_CLASS[c] = 2
BYTE_CLASS[0x09] = 2
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
  BYTE_CLASS[c.charCodeAt(0)] = 3
// Headers whose presence means node:http must decide: body framing, continuation, upgrade, and
// `Proxy-Connection` (node:http reads `close` in it as `Connection: close`).
const HAND_OVER_NAMES = [
  'transfer-encoding',
  'expect',
  'upgrade',
  'te',
  'trailer',
  'proxy-connection',
]
// Header names as clients usually spell them -> the lower-case name (an interned constant, so that
// storing it as a key costs no string-table lookup); `null` for the names handed over.
const NAMES = new Map<string, string | null>()
for (const name of [
  'host',
  'content-type',
  'content-length',
  'connection',
  'authorization',
  'user-agent',
  'accept',
  'accept-encoding',
  'accept-language',
  'cache-control',
  'last-event-id',
  'origin',
  'pragma',
  'x-forwarded-for',
  ...HAND_OVER_NAMES,
]) {
  const value = HAND_OVER_NAMES.includes(name) ? null : name
  const capitalized = name.replace(
    /(^|-)([a-z])/g,
    (_, dash: string, c: string) => dash + c.toUpperCase(),
  )
  NAMES.set(name, value)
  NAMES.set(capitalized, value)
}

/**
 * Headers whose repeated lines are joined with `, ` in order, exactly as node:http joins them (it
 * joins every header it does not know, and these two by name), rather than handed over: a chain of
 * proxies may add one `X-Forwarded-For` line per hop (HAProxy's `option forwardfor` adds a line
 * instead of appending), and `trustProxy` must read the same address list on both fronts. Only
 * list-valued headers the pipeline reads as lists belong here; a repeated Host, Content-Length or
 * Authorization (node:http keeps the first) is still node:http's to judge.
 */
const JOINED_NAMES: ReadonlySet<string> = new Set(['x-forwarded-for', 'forwarded'])

const EMPTY = Buffer.alloc(0)

function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09
}

/** Parses the request at the start of `buffer`, or says it is not one for the fast front. */
export function parseFastRequest(buffer: Buffer, limits: FastLimits): Parsed {
  let lineEnd: number
  let method: 'GET' | 'POST'
  let target: string
  if (
    buffer.length >= PUBLISH_LINE.length &&
    buffer.compare(PUBLISH_LINE, 0, PUBLISH_LINE.length, 0, PUBLISH_LINE.length) === 0
  ) {
    lineEnd = PUBLISH_LINE.length - 2
    method = 'POST'
    target = '/publish'
  } else {
    lineEnd = buffer.indexOf('\r\n', 0, 'latin1')
    if (lineEnd === -1 || lineEnd > limits.maxHeaderBytes) return HAND_OVER
    const line = REQUEST_LINE.exec(buffer.toString('latin1', 0, lineEnd))
    if (line === null) return HAND_OVER
    method = line[1] as 'GET' | 'POST'
    target = line[2]!
  }
  const end = buffer.indexOf(HEAD_END, lineEnd)
  // Incomplete, or larger than the limit: node:http waits for it (with its timeouts) or refuses it.
  if (end === -1 || end + 4 > limits.maxHeaderBytes) return HAND_OVER
  // A plain object (a null-prototype one is a slow dictionary); `__proto__` is handed over below.
  const headers: Record<string, string> = {}
  // One pass over the header lines, by character: names must be tokens, values field bytes; a
  // bare CR or LF fails both.
  const head = buffer.toString('latin1', lineEnd + 2, end + 2)
  let at = 0
  let count = 0
  while (at < head.length) {
    if (++count > limits.maxHeaderCount) return HAND_OVER
    let colon = at
    while (colon < head.length && BYTE_CLASS[head.charCodeAt(colon)] === 3) colon++
    if (colon === at || head.charCodeAt(colon) !== 0x3a) return HAND_OVER
    let eol = colon + 1
    while (eol < head.length && BYTE_CLASS[head.charCodeAt(eol)]! >= 2) eol++
    if (head.charCodeAt(eol) !== 0x0d || head.charCodeAt(eol + 1) !== 0x0a) return HAND_OVER
    // Optional whitespace around the value is not part of it.
    let from = colon + 1
    let to = eol
    while (from < to && isOws(head.charCodeAt(from))) from++
    while (to > from && isOws(head.charCodeAt(to - 1))) to--
    const name = head.slice(at, colon)
    let key = NAMES.get(name)
    if (key === undefined) {
      const lower = name.toLowerCase()
      key = NAMES.has(lower) ? NAMES.get(lower)! : lower
    }
    if (key === null || key === '__proto__') return HAND_OVER
    if (Object.hasOwn(headers, key)) {
      if (!JOINED_NAMES.has(key)) return HAND_OVER
      // Empty lines included, as node:http does (`a, ` reads as malformed on both fronts).
      headers[key] += `, ${head.slice(from, to)}`
      at = eol + 2
      continue
    }
    // node:http refuses a tab around a Content-Length (`25\t`): so must the fast front.
    if (key === 'content-length' && head.lastIndexOf('\t', eol) > colon) return HAND_OVER
    headers[key] = head.slice(from, to)
    at = eol + 2
  }
  if (headers.host === undefined) return HAND_OVER
  const connection = headers.connection?.toLowerCase()
  if (connection !== undefined && connection !== 'keep-alive') return HAND_OVER
  const mark = target.indexOf('?')
  const path = mark === -1 ? target : target.slice(0, mark)
  const query = mark === -1 ? '' : target.slice(mark + 1)
  const declared = headers['content-length']
  if (method === 'GET') {
    // No body: a GET with one is node:http's to frame.
    if (declared !== undefined && declared !== '0') return HAND_OVER
    return {
      kind: 'request',
      request: new FastRequest(method, path, query, headers, EMPTY),
      length: end + 4,
    }
  }
  // Plain digits only: signs, a list or a huge value are node:http's to refuse.
  if (declared === undefined || !/^\d{1,10}$/.test(declared)) return HAND_OVER
  const size = Number(declared)
  if (size > limits.maxBodyBytes || buffer.length < end + 4 + size) return HAND_OVER
  return {
    kind: 'request',
    request: new FastRequest(
      method,
      path,
      query,
      headers,
      buffer.subarray(end + 4, end + 4 + size),
    ),
    length: end + 4 + size,
  }
}
