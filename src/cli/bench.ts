import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { UsageError, type CliIo } from './io.js'

/** `ssehub bench --help`. */
export const benchHelp = `Usage: ssehub bench [options]

Capacity benchmark: idle connections, broadcast fan-out, one-to-one, a slow consumer and the
cost of features, for ssehub and its peers (better-sse, a naive Express hub, a bare node:net
server as the floor, nginx + nchan when installed) in one run, through the same load generator:
each scenario runs for every server in turn, so that machine drift skews ratios least. Servers
run on core 0 and the generator on core 1 when taskset exists. Traffic goes to 127.0.0.0/8 only.
Needs a source checkout.

Options:
  --servers LIST          ssehub,better-sse,naive-express,node-floor,nchan (default: all)
  --url URL               bench a running hub on a loopback URL instead of starting servers
  --connections N         idle connections to ramp to (default 10000)
  --held N                subscriptions to hold at the end of the idle ramp (default 19500)
  --subscribers LIST      broadcast subscriber counts (default 1000,10000)
  --rate N                fixed publish rate of the broadcast, per second (default 10)
  --seconds N             length of each publishing phase (default 5)
  --clients N             client ids of the one-to-one scenario (default 1000)
  --slow-subscribers N    readers next to the stalled stream (default 100)
  --slow-rate N           publishes/s of the slow-consumer scenario (default 400)
  --workers N             load-generator threads holding streams (default 2)
  --max-publishes N       cap of publishes per phase (default 100000)
  --repeat N              rounds of each publishing phase; the summary takes medians (default 1)
  --scenarios LIST        idle,broadcast,one-to-one,slow-consumer,features (default: all)
  --out PREFIX            writes PREFIX.json, PREFIX.md, PREFIX-*.svg (default bench/results/capacity)
`

const stringFlags = [
  'servers',
  'url',
  'connections',
  'held',
  'subscribers',
  'rate',
  'seconds',
  'clients',
  'slow-subscribers',
  'slow-rate',
  'workers',
  'max-publishes',
  'repeat',
  'scenarios',
  'out',
] as const

/**
 * Runs the capacity benchmark (bench/capacity/run.ts) in a child process and relays its output.
 * Resolves with its exit code: 0 when every scenario ran, 1 when one failed.
 */
export async function runBench(argv: string[], io: CliIo): Promise<number> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  }
  for (const flag of stringFlags) options[flag] = { type: 'string' }
  let values: Record<string, string | boolean | undefined>
  try {
    ;({ values } = parseArgs({ args: argv, strict: true, allowPositionals: false, options }) as {
      values: Record<string, string | boolean | undefined>
    })
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error))
  }
  for (const flag of stringFlags) {
    const value = values[flag]
    if (typeof value !== 'string') continue
    if (flag === 'url' || flag === 'out' || flag === 'servers' || flag === 'scenarios') continue
    for (const item of value.split(',')) {
      const n = Number(item)
      if (!Number.isSafeInteger(n) || n < 1)
        throw new UsageError(`--${flag} expects a positive integer, got ${JSON.stringify(value)}`)
    }
  }
  const url = values.url
  if (typeof url === 'string') {
    let host: string
    try {
      host = new URL(url).hostname
    } catch {
      throw new UsageError(`--url expects a URL, got ${JSON.stringify(url)}`)
    }
    if (!/^127\./.test(host) && host !== 'localhost')
      throw new UsageError(`--url must be a loopback address (127.0.0.0/8), got ${host}`)
  }
  if (values.help === true) {
    io.stdout(benchHelp)
    return 0
  }
  // The same relative path from src/cli and dist/cli: the repository's bench/ directory.
  const script = fileURLToPath(new URL('../../bench/capacity/run.ts', import.meta.url))
  if (!existsSync(script))
    throw new UsageError(
      'ssehub bench needs a source checkout (bench/capacity) with dev dependencies',
    )
  let tsx: string
  try {
    tsx = import.meta.resolve('tsx')
  } catch {
    throw new UsageError('ssehub bench needs tsx: run `npm ci` in the checkout')
  }
  const child = spawn(process.execPath, ['--import', tsx, script, ...argv], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SSEHUB_BENCH_COMMAND: `ssehub bench ${argv.join(' ')}`.trim() },
  })
  child.stdout.setEncoding('utf8').on('data', (text: string) => io.stdout(text))
  child.stderr.setEncoding('utf8').on('data', (text: string) => io.stderr(text))
  const stop = (): void => void child.kill('SIGTERM')
  io.signal.addEventListener('abort', stop, { once: true })
  try {
    return await new Promise<number>((resolve, reject) => {
      child.on('error', reject)
      child.on('close', (code) => resolve(code ?? 1))
    })
  } finally {
    io.signal.removeEventListener('abort', stop)
  }
}
