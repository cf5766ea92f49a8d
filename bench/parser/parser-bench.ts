/**
 * Parser benchmark: ssehub's `createParser` against `eventsource-parser` on identical inputs, in
 * the same process, alternating runs so that both see the same machine state.
 *
 *   npx tsx bench/parser/parser-bench.ts [--runs 15] [--markdown]
 *
 * Two input modes per scenario:
 * - text: both parsers get the same pre-decoded string chunks (eventsource-parser's own input);
 * - bytes: both get the same `Uint8Array` chunks, as a response body delivers them. eventsource-parser
 *   only takes strings, so it is given a streaming `TextDecoder` in front, which is what its
 *   `EventSourceParserStream` does with a `TextDecoderStream`.
 * Every run checks that both produced the same number of events and the same data length, so a
 * parser cannot win by doing less.
 */
import { createParser as createTheirs } from 'eventsource-parser'
import { createParser as createOurs } from '../../src/wire/parse.js'

interface Scenario {
  readonly name: string
  readonly text: string
  /** Chunk size in bytes (and in characters for the text mode: the inputs are ASCII). */
  readonly chunkSize: number
}

function smallEvents(count: number, eol: string): string {
  let out = ''
  for (let i = 0; i < count; i++) {
    out += `id: ${i}${eol}event: update${eol}data: {"n":${i},"text":"hello world, event ${i}"}${eol}${eol}`
  }
  return out
}

function chatChunks(count: number): string {
  let out = ''
  for (let i = 0; i < count; i++) {
    out += `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tok${i} "}}]}\n\n`
  }
  return out + 'data: [DONE]\n\n'
}

function largeEvents(count: number, lines: number): string {
  const line = 'x'.repeat(72)
  let out = ''
  for (let i = 0; i < count; i++) {
    out += `event: big\n`
    for (let j = 0; j < lines; j++) out += `data: ${j} ${line}\n`
    out += '\n'
  }
  return out
}

const scenarios: Scenario[] = [
  {
    name: 'many small events (id+event+data), 16 KiB chunks',
    text: smallEvents(50_000, '\n'),
    chunkSize: 16_384,
  },
  {
    name: 'many small events, CRLF line ends, 16 KiB chunks',
    text: smallEvents(50_000, '\r\n'),
    chunkSize: 16_384,
  },
  {
    name: 'chat completion chunks (data only), 1 KiB chunks',
    text: chatChunks(50_000),
    chunkSize: 1_024,
  },
  {
    name: 'few large multi-line events (20 x 5000 lines), 64 KiB chunks',
    text: largeEvents(20, 5_000),
    chunkSize: 65_536,
  },
  { name: 'small events fed byte by byte', text: smallEvents(2_000, '\n'), chunkSize: 1 },
]

interface Input {
  readonly strings: string[]
  readonly bytes: Uint8Array[]
  readonly totalBytes: number
}

function split(scenario: Scenario): Input {
  const bytes = new TextEncoder().encode(scenario.text)
  const strings: string[] = []
  const byteChunks: Uint8Array[] = []
  // The text chunks are decoded from the byte chunks, as a fetch body piped through a
  // TextDecoderStream delivers them: flat strings. (Slices of one big string would be V8
  // "sliced strings", on which `indexOf` takes a slower path: not what a network delivers.)
  const decoder = new TextDecoder()
  for (let i = 0; i < bytes.length; i += scenario.chunkSize) {
    const chunk = bytes.slice(i, i + scenario.chunkSize)
    byteChunks.push(chunk)
    strings.push(decoder.decode(chunk, { stream: true }))
  }
  return { strings, bytes: byteChunks, totalBytes: bytes.length }
}

interface Tally {
  events: number
  chars: number
}

type Runner = (input: Input, tally: Tally) => void

const runners: Record<'ours' | 'theirs', Record<'text' | 'bytes', Runner>> = {
  ours: {
    text(input, tally) {
      const parser = createOurs({
        onEvent(event) {
          tally.events++
          tally.chars += event.data.length
        },
      })
      for (const chunk of input.strings) parser.feed(chunk)
    },
    bytes(input, tally) {
      const parser = createOurs({
        onEvent(event) {
          tally.events++
          tally.chars += event.data.length
        },
      })
      for (const chunk of input.bytes) parser.feed(chunk)
    },
  },
  theirs: {
    text(input, tally) {
      const parser = createTheirs({
        onEvent(event) {
          tally.events++
          tally.chars += event.data.length
        },
      })
      for (const chunk of input.strings) parser.feed(chunk)
    },
    bytes(input, tally) {
      const parser = createTheirs({
        onEvent(event) {
          tally.events++
          tally.chars += event.data.length
        },
      })
      const decoder = new TextDecoder()
      for (const chunk of input.bytes) parser.feed(decoder.decode(chunk, { stream: true }))
    },
  },
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

function timeOnce(run: Runner, input: Input): { ms: number; tally: Tally } {
  const tally: Tally = { events: 0, chars: 0 }
  const start = performance.now()
  run(input, tally)
  return { ms: performance.now() - start, tally }
}

interface Row {
  scenario: string
  mode: string
  bytes: number
  events: number
  oursMBps: number
  theirsMBps: number
  ratio: number
}

function measure(scenario: Scenario, mode: 'text' | 'bytes', runs: number): Row {
  const input = split(scenario)
  const ours: number[] = []
  const theirs: number[] = []
  let events = 0
  // Warm up both (JIT), then alternate so that neither always runs on a hotter or cooler machine.
  for (let i = 0; i < 3; i++) {
    timeOnce(runners.ours[mode], input)
    timeOnce(runners.theirs[mode], input)
  }
  for (let i = 0; i < runs; i++) {
    const a = timeOnce(runners.ours[mode], input)
    const b = timeOnce(runners.theirs[mode], input)
    if (a.tally.events !== b.tally.events || a.tally.chars !== b.tally.chars) {
      throw new Error(
        `${scenario.name} (${mode}): parsers disagree: ours ${JSON.stringify(a.tally)}, theirs ${JSON.stringify(b.tally)}`,
      )
    }
    events = a.tally.events
    ours.push(a.ms)
    theirs.push(b.ms)
  }
  const mb = input.totalBytes / 1e6
  const oursMs = median(ours)
  const theirsMs = median(theirs)
  return {
    scenario: scenario.name,
    mode,
    bytes: input.totalBytes,
    events,
    oursMBps: mb / (oursMs / 1000),
    theirsMBps: mb / (theirsMs / 1000),
    ratio: theirsMs / oursMs,
  }
}

function main(): void {
  const args = process.argv.slice(2)
  const runsIndex = args.indexOf('--runs')
  const runs = runsIndex === -1 ? 15 : Number(args[runsIndex + 1])
  const markdown = args.includes('--markdown')
  const rows: Row[] = []
  for (const scenario of scenarios) {
    for (const mode of ['text', 'bytes'] as const) {
      const row = measure(scenario, mode, runs)
      rows.push(row)
      if (!markdown) {
        console.log(
          `${row.scenario} [${row.mode}]: ours ${row.oursMBps.toFixed(1)} MB/s, eventsource-parser ${row.theirsMBps.toFixed(1)} MB/s, ours x${row.ratio.toFixed(2)}`,
        )
      }
    }
  }
  if (markdown) {
    console.log(
      '| scenario | input | MB | events | ssehub MB/s | eventsource-parser MB/s | ssehub speed-up |',
    )
    console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: |')
    for (const row of rows) {
      console.log(
        `| ${row.scenario} | ${row.mode} | ${(row.bytes / 1e6).toFixed(2)} | ${row.events} | ${row.oursMBps.toFixed(1)} | ${row.theirsMBps.toFixed(1)} | x${row.ratio.toFixed(2)} |`,
      )
    }
  }
  const slowest = Math.min(...rows.map((row) => row.ratio))
  console.log(
    `\nslowest ratio (eventsource-parser time / ssehub time): x${slowest.toFixed(2)} over ${runs} runs each`,
  )
}

main()
