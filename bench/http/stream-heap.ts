/**
 * What an idle stream holds, with and without the socket-level fast path: opens `--streams` raw
 * `GET /events` sockets to a fresh hub and reports the growth of the hub's retained heap (after a
 * full GC) and RSS, per stream. Needs a build (`npm run build`). Writes a Markdown table to stdout.
 *
 * npx tsx bench/http/stream-heap.ts [--streams 5000]
 */
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { openStreams } from './streams.js'

const { values } = parseArgs({ options: { streams: { type: 'string', default: '5000' } } })
const streams = Number(values.streams)
if (!Number.isSafeInteger(streams) || streams < 1 || streams > 9_000) {
  process.stderr.write(
    '--streams expects an integer from 1 to 9000 (two sockets per stream here)\n',
  )
  process.exit(2)
}

interface Memory {
  readonly rss: number
  readonly heapUsed: number
  readonly streams: number
}

function ask(child: ChildProcess): Promise<Memory> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the hub did not answer in 10 s')), 10_000)
    child.once('message', (message) => {
      clearTimeout(timer)
      resolve(message as Memory)
    })
    child.send('memory')
  })
}

async function measure(fastPath: boolean): Promise<{ heap: number; rss: number }> {
  const child = fork(fileURLToPath(new URL('./hub-child.ts', import.meta.url)), [], {
    execArgv: ['--expose-gc', '--import', import.meta.resolve('tsx')],
    env: { ...process.env, FAST_PATH: fastPath ? '1' : '0' },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  })
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk
      const match = /listening (\d+)/.exec(out)
      if (match !== null) resolve(Number(match[1]))
    })
    child.once('exit', (code) => reject(new Error(`the hub exited with ${code}`)))
  })
  const before = await ask(child)
  const sockets = await openStreams(
    port,
    Array.from({ length: streams }, (_, i) => `/events?topic=idle-${i % 100}`),
  )
  const after = await ask(child)
  if (after.streams !== streams) throw new Error(`${after.streams} of ${streams} streams open`)
  for (const socket of sockets) socket.destroy()
  child.kill('SIGTERM')
  return {
    heap: (after.heapUsed - before.heapUsed) / streams,
    rss: (after.rss - before.rss) / streams,
  }
}

const rows: string[] = []
for (const fastPath of [false, true]) {
  const { heap, rss } = await measure(fastPath)
  rows.push(
    `| ${fastPath ? 'fast path' : 'node:http only'} | ${Math.round(heap).toLocaleString('en')} | ${Math.round(rss).toLocaleString('en')} |`,
  )
}
process.stdout.write(
  [
    `\`npx tsx bench/http/stream-heap.ts --streams ${streams}\`: bytes per idle stream`,
    '',
    '| hub | retained heap (after GC) | RSS |',
    '| --- | --: | --: |',
    ...rows,
    '',
  ].join('\n'),
)
process.exit(0)
