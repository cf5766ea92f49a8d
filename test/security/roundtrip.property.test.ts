import { createParser as createReferenceParser } from 'eventsource-parser'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { encodeEvent, type SseEvent } from '../../src/wire/encode.js'
import { createParser } from '../../src/wire/parse.js'

/** Hostile characters mixed with any code point, lone surrogates included. */
const char = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '\r',
      '\n',
      '\r\n',
      '\n\ndata: x',
      ':',
      ' ',
      '\0',
      'é',
      '😀',
      '\ud800',
      '\udfff',
    ),
  },
  { weight: 5, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
)
const text = fc.string({ unit: char, maxLength: 30 })
const singleLine = text.map((value) => value.replace(/[\r\n]/g, ''))
const event: fc.Arbitrary<SseEvent> = fc.record(
  {
    id: singleLine.map((value) => value.replace(/\0/g, '')),
    event: singleLine.filter((value) => value !== ''),
    data: text,
    retry: fc.nat(),
  },
  { requiredKeys: ['data'] },
)

/** What a conforming parser must report for `events` encoded by ssehub (bytes are UTF-8). */
function expected(events: SseEvent[]): { type: string; data: string; id: string }[] {
  // UTF-8 encoding replaces lone surrogates with U+FFFD; the encoder turns CR and CRLF into LF lines.
  const wire = (value: string): string => Buffer.from(value, 'utf8').toString('utf8')
  let id = ''
  return events.map((e) => {
    if (e.id !== undefined) id = wire(e.id)
    return { type: wire(e.event ?? 'message'), data: wire(e.data!.replace(/\r\n|\r/g, '\n')), id }
  })
}

describe('encoder/parser round trip (property)', () => {
  it('any event ssehub encodes is parsed back to the same event by our parser and by eventsource-parser', () => {
    fc.assert(
      fc.property(
        fc.array(event, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (events, cuts) => {
          const bytes = Buffer.concat(events.map((e) => encodeEvent(e)))
          const want = expected(events)

          const ours: { type: string; data: string; id: string }[] = []
          const parser = createParser({
            onEvent: (e) => ours.push({ type: e.type, data: e.data, id: e.lastEventId }),
          })
          // Random chunk boundaries, through multibyte characters too.
          const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort(
            (a, b) => a - b,
          )
          let start = 0
          for (const point of [...points, bytes.length]) {
            parser.feed(bytes.subarray(start, point))
            start = point
          }
          expect(ours).toEqual(want)

          const reference: { type: string; data: string; id: string }[] = []
          let lastId = ''
          const referenceParser = createReferenceParser({
            onEvent: (e) => {
              if (e.id !== undefined) lastId = e.id
              reference.push({ type: e.event ?? 'message', data: e.data, id: lastId })
            },
          })
          referenceParser.feed(bytes.toString('utf8'))
          expect(reference).toEqual(want)
        },
      ),
      { numRuns: 1000 },
    )
  })
})
