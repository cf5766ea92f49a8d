import type { ParsedEvent } from '../../src/wire/parse.js'
import { ev } from './parse-helpers.js'

/** One parser test vector: a whole stream and everything it must produce. */
export interface Vector {
  readonly name: string
  readonly stream: string
  readonly events: ParsedEvent[]
  readonly retries?: number[]
  readonly comments?: string[]
  /** `parser.lastEventId` at the end. */
  readonly lastEventId?: string
}

/**
 * The spec's own examples, then one vector per rule of the event stream interpretation. Every
 * vector runs fed whole, as text and as bytes, byte by byte and character by character; the
 * property test in parse.property.test.ts adds random splits of each.
 */
export const vectors: Vector[] = [
  {
    name: 'spec: data lines joined with LF (stock ticker)',
    stream: 'data: YHOO\ndata: +2\ndata: 10\n\n',
    events: [ev('YHOO\n+2\n10')],
  },
  {
    name: 'spec: comment, ids, id reset by a bare `id`, two spaces keep one',
    stream:
      ': test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n',
    events: [ev('first event', 'message', '1'), ev('second event'), ev(' third event')],
    comments: ['test stream'],
  },
  {
    name: 'spec: bare `data` lines; an unterminated event at the end is not dispatched',
    stream: 'data\n\ndata\ndata\n\ndata:',
    events: [ev(''), ev('\n')],
  },
  {
    name: 'spec: one optional space after the colon',
    stream: 'data:test\n\ndata: test\n\n',
    events: [ev('test'), ev('test')],
  },
  {
    name: 'spec: event types',
    stream:
      'event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n',
    events: [ev('73857293', 'add'), ev('2153', 'remove'), ev('113411', 'add')],
  },
  {
    name: 'a leading BOM is dropped',
    stream: '\uFEFFdata: a\n\n',
    events: [ev('a')],
  },
  {
    name: 'only one leading BOM is dropped: a second one makes the first field unknown',
    stream: '\uFEFF\uFEFFdata: a\n\ndata: b\n\n',
    events: [ev('b')],
  },
  {
    name: 'a BOM later in the stream is data',
    stream: 'data: \uFEFFx\n\n',
    events: [ev('\uFEFFx')],
  },
  {
    name: 'CR line ends',
    stream: 'data: a\rdata: b\r\rdata: c\r\r',
    events: [ev('a\nb'), ev('c')],
  },
  {
    name: 'CRLF line ends',
    stream: 'event: e\r\ndata: a\r\ndata: b\r\n\r\n',
    events: [ev('a\nb', 'e')],
  },
  {
    name: 'mixed CR, LF and CRLF line ends (LF CR is two line ends)',
    stream: 'data: a\ndata: b\rdata: c\r\n\ndata: d\n\rdata: e\r\n\r\n',
    events: [ev('a\nb\nc'), ev('d'), ev('e')],
  },
  {
    name: 'CR CR LF is a CR line end then a CRLF one',
    stream: 'data: a\r\r\ndata: b\n\n',
    events: [ev('a'), ev('b')],
  },
  {
    name: 'no space, one space, two spaces, a tab after the colon',
    stream: 'data:a\n\ndata: a\n\ndata:  a\n\ndata:\ta\n\n',
    events: [ev('a'), ev('a'), ev(' a'), ev('\ta')],
  },
  {
    name: 'comments are reported and never dispatch',
    stream: ':\n: ping\n:  two\n:no space\n\n',
    events: [],
    comments: ['', 'ping', ' two', 'no space'],
  },
  {
    name: 'unknown fields and field names differing in case are ignored',
    stream: 'foo: bar\nData: x\nDATA: y\nevents: z\ndata: kept\n\n',
    events: [ev('kept')],
  },
  {
    name: 'a field name without a colon has an empty value',
    stream: 'data\nevent\ndata\n\n',
    events: [ev('\n')],
  },
  {
    name: 'the field value may contain colons',
    stream: 'data: a:b: c\nevent: x:y\n\n',
    events: [ev('a:b: c', 'x:y')],
  },
  {
    name: 'an id containing NUL is ignored, the previous id stays',
    stream: 'id: 1\ndata: a\n\nid: 2\u00003\ndata: b\n\n',
    events: [ev('a', 'message', '1'), ev('b', 'message', '1')],
    lastEventId: '1',
  },
  {
    name: 'the last event id persists across events until changed or reset',
    stream: 'id: 7\ndata: a\n\ndata: b\n\nid:\ndata: c\n\nid: 8\ndata: d\n\n',
    events: [ev('a', 'message', '7'), ev('b', 'message', '7'), ev('c'), ev('d', 'message', '8')],
    lastEventId: '8',
  },
  {
    name: 'an id with no data dispatches nothing but moves the last event id',
    stream: 'data: a\n\nid: 5\n\n',
    events: [ev('a')],
    lastEventId: '5',
  },
  {
    name: 'an id of an event cut off by the end of the stream does not count',
    stream: 'id: 1\ndata: a\n\nid: 2\ndata: b\n',
    events: [ev('a', 'message', '1')],
    lastEventId: '1',
  },
  {
    name: 'retry: only ASCII digits',
    stream:
      'retry: 1000\nretry: 1a\nretry: -1\nretry:\nretry\nretry:  5\nretry: 1.5\nretry: ١٢\nretry:0\nretry: 007\n\n',
    events: [],
    retries: [1000, 0, 7],
  },
  {
    name: 'retry does not dispatch and does not need a blank line',
    stream: 'retry: 250\ndata: x\n\n',
    events: [ev('x')],
    retries: [250],
  },
  {
    name: 'data lines joined with LF, the final LF dropped; empty lines inside kept',
    stream: 'data: a\ndata:\ndata: b\ndata:\n\n',
    events: [ev('a\n\nb\n')],
  },
  {
    name: 'no dispatch for an empty data buffer; the event type is reset anyway',
    stream: 'event: foo\n\ndata: x\n\nevent: bar\n\n\n\n',
    events: [ev('x')],
  },
  {
    name: 'default type `message`, also for an empty event field',
    stream: 'event:\ndata: x\n\nevent\ndata: y\n\n',
    events: [ev('x'), ev('y')],
  },
  {
    name: 'the last event field wins',
    stream: 'event: a\nevent: b\ndata: x\n\n',
    events: [ev('x', 'b')],
  },
  {
    name: 'field order does not matter',
    stream: 'data: x\nid: 3\nevent: t\n\n',
    events: [ev('x', 't', '3')],
  },
  {
    name: 'a data line of spaces keeps all but one',
    stream: 'data:   \n\n',
    events: [ev('  ')],
  },
  {
    name: 'NUL and control characters in data are data',
    stream: 'data: a\u0000b\u0007c\n\n',
    events: [ev('a\u0000b\u0007c')],
  },
  {
    name: 'multibyte characters and emoji',
    stream: 'event: ünïcødé\ndata: Blåbærsyltetøy 一定能 😀👩🏽‍❤️‍💋‍👨🏿\nid: ✓\n\n',
    events: [ev('Blåbærsyltetøy 一定能 😀👩🏽‍❤️‍💋‍👨🏿', 'ünïcødé', '✓')],
    lastEventId: '✓',
  },
  {
    name: 'many events in a row',
    stream: Array.from({ length: 50 }, (_, i) => `id: ${i}\ndata: ${i}\n\n`).join(''),
    events: Array.from({ length: 50 }, (_, i) => ev(String(i), 'message', String(i))),
    lastEventId: '49',
  },
]
