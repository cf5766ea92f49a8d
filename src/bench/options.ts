/**
 * The options of `ssehub bench`, in one table: the flags, their defaults, `--help` and the parse
 * all come from it. Parsed once, in the CLI; the bench process gets the resolved options.
 */
import { parseArgs } from 'node:util'

/** The environment variable that carries the resolved options (JSON) to the bench process. */
export const BENCH_OPTIONS_ENV = 'SSEHUB_BENCH_OPTIONS'

/**
 * The servers the bench can start, in the order it runs them. `ssehub-redis` is ssehub with the
 * Redis broker, against a redis-server the bench starts; `ssehub-workers` is `ssehub serve
 * --workers N` (`--hub-workers`), one hub over several processes. Both are ssehub itself on
 * another setting, measured beside plain `ssehub` in the same run: asked for by name, not run by
 * default.
 */
export const serverNames = [
  'ssehub',
  'ssehub-redis',
  'ssehub-workers',
  'better-sse',
  'naive-express',
  'node-floor',
  'nchan',
] as const
/** A server the bench can start. */
export type ServerName = (typeof serverNames)[number]
/** The servers a run starts without `--servers`: all but `ssehub-redis` and `ssehub-workers`. */
export const defaultServers: readonly ServerName[] = serverNames.filter(
  (n) => n !== 'ssehub-redis' && n !== 'ssehub-workers',
)

/** The scenarios, in the order they run. */
export const scenarioNames = [
  'idle',
  'broadcast',
  'one-to-one',
  'slow-consumer',
  'features',
] as const
/** A scenario of the bench. */
export type ScenarioName = (typeof scenarioNames)[number]

/** The resolved options of one capacity run. */
export interface BenchOptions {
  /** The servers to start, each in turn; empty when `url` is set. */
  readonly servers: readonly ServerName[]
  /** A running hub on a loopback address to bench instead of starting servers. */
  readonly url: string | undefined
  /** The publish key of the hub at `url` (`--key`, else `SSEHUB_PUBLISH_KEY`). */
  readonly key: string | undefined
  /** Idle connections to ramp to. @default 10000 */
  readonly connections: number
  /** Subscriptions held at the end of the idle ramp. @default 19500 */
  readonly held: number
  /** Subscriber counts of the broadcast scenario. @default [1000, 10000] */
  readonly subscriberCounts: readonly number[]
  /** Fixed publish rate of the broadcast, per second. @default 10 */
  readonly rate: number
  /** Length of each publishing phase. @default 5 */
  readonly seconds: number
  /** Client ids of the one-to-one scenario. @default 1000 */
  readonly clients: number
  /** Readers next to the stalled stream. @default 100 */
  readonly slowSubscribers: number
  /** Publishes per second of the slow-consumer scenario. @default 400 */
  readonly slowRate: number
  /** Load-generator threads holding streams. @default 2 */
  readonly workers: number
  /**
   * Worker processes of the `ssehub-workers` server (`ssehub serve --workers N`). Not
   * `--workers`, which has always meant the load generator's threads. @default 2
   */
  readonly hubWorkers: number
  /** Cap of publishes per phase. @default 100000 */
  readonly maxPublishes: number
  /** Rounds of each publishing phase; the report takes medians. @default 1 */
  readonly repeat: number
  /** The scenarios to run. @default every one of {@link scenarioNames} */
  readonly scenarios: readonly ScenarioName[]
  /** Output prefix: writes `<out>.json`, `<out>.md` and `<out>-*.svg`. @default 'bench/results/capacity' */
  readonly out: string
  /** The command line, recorded in the results. */
  readonly command: string
}

type NumberKey =
  | 'connections'
  | 'held'
  | 'rate'
  | 'seconds'
  | 'clients'
  | 'slowSubscribers'
  | 'slowRate'
  | 'workers'
  | 'hubWorkers'
  | 'maxPublishes'
  | 'repeat'

interface Flag {
  /** The flag, without `--`. */
  readonly flag: string
  readonly placeholder: string
  readonly help: string
  /** The default as typed on a command line; undefined: none. */
  readonly default: string | undefined
}

/** Every flag of `ssehub bench`, with its default, in `--help` order. */
export const benchFlags: readonly Flag[] = [
  {
    flag: 'servers',
    placeholder: 'LIST',
    help: 'servers to start, each in turn (also: ssehub-redis)',
    default: defaultServers.join(','),
  },
  {
    flag: 'url',
    placeholder: 'URL',
    help: 'bench a running hub on a loopback URL instead of starting servers',
    default: undefined,
  },
  {
    flag: 'key',
    placeholder: 'KEY',
    help: 'publish key of the hub at --url (or SSEHUB_PUBLISH_KEY)',
    default: undefined,
  },
  { flag: 'connections', placeholder: 'N', help: 'idle connections to ramp to', default: '10000' },
  {
    flag: 'held',
    placeholder: 'N',
    help: 'subscriptions to hold at the end of the idle ramp',
    default: '19500',
  },
  {
    flag: 'subscribers',
    placeholder: 'LIST',
    help: 'broadcast subscriber counts',
    default: '1000,10000',
  },
  {
    flag: 'rate',
    placeholder: 'N',
    help: 'fixed publish rate of the broadcast, per second',
    default: '10',
  },
  { flag: 'seconds', placeholder: 'N', help: 'length of each publishing phase', default: '5' },
  {
    flag: 'clients',
    placeholder: 'N',
    help: 'client ids of the one-to-one scenario',
    default: '1000',
  },
  {
    flag: 'slow-subscribers',
    placeholder: 'N',
    help: 'readers next to the stalled stream',
    default: '100',
  },
  {
    flag: 'slow-rate',
    placeholder: 'N',
    help: 'publishes/s of the slow-consumer scenario',
    default: '400',
  },
  {
    flag: 'workers',
    placeholder: 'N',
    help: 'load-generator threads holding streams',
    default: '2',
  },
  {
    flag: 'hub-workers',
    placeholder: 'N',
    help: 'worker processes of ssehub-workers (ssehub serve --workers N)',
    default: '2',
  },
  {
    flag: 'max-publishes',
    placeholder: 'N',
    help: 'cap of publishes per phase',
    default: '100000',
  },
  {
    flag: 'repeat',
    placeholder: 'N',
    help: 'rounds of each publishing phase; the summary takes medians',
    default: '1',
  },
  {
    flag: 'scenarios',
    placeholder: 'LIST',
    help: 'scenarios to run',
    default: scenarioNames.join(','),
  },
  {
    flag: 'out',
    placeholder: 'PREFIX',
    help: 'writes PREFIX.json, PREFIX.md, PREFIX-*.svg; folders are created',
    default: 'bench/results/capacity',
  },
]

const numberFlags: Record<string, NumberKey> = {
  connections: 'connections',
  held: 'held',
  rate: 'rate',
  seconds: 'seconds',
  clients: 'clients',
  'slow-subscribers': 'slowSubscribers',
  'slow-rate': 'slowRate',
  workers: 'workers',
  'hub-workers': 'hubWorkers',
  'max-publishes': 'maxPublishes',
  repeat: 'repeat',
}

/** `ssehub bench --help`, generated from {@link benchFlags}. */
export function benchHelp(): string {
  const lines = benchFlags.map((f) => {
    const line = `${`  --${f.flag} ${f.placeholder}`.padEnd(26)}${f.help}`
    if (f.default === undefined) return line
    // Within 100 columns: a long default goes on a line of its own.
    const withDefault = `${line} (default ${f.default})`
    return withDefault.length <= 100
      ? withDefault
      : `${line}\n${' '.repeat(26)}(default ${f.default})`
  })
  return `Usage: ssehub bench [options]

Capacity benchmark: idle connections, broadcast fan-out, one-to-one, a slow consumer and the
cost of features, for ssehub and its peers in one run, through the same load generator: each
scenario runs for every server in turn, so that machine drift skews ratios least. Servers run
on core 0 and the generator on core 1 when taskset exists. Traffic goes to 127.0.0.0/8 only.
Writes the figures as JSON and Markdown, and SVG charts.

Servers: ssehub (this package); node-floor (a bare node:net server, the floor); better-sse and
naive-express (need the better-sse and express packages: a checkout's dev dependencies, or
\`npm install better-sse express\` beside ssehub); nchan (needs nginx and its nchan module).
ssehub-redis: ssehub with the Redis broker, against a redis-server the bench starts on a free
port, on the generator's core (needs redis-server on the PATH); run only when --servers names it.
ssehub-workers: \`ssehub serve --workers N\` (N = --hub-workers), on cores 0..N-1 (as many as
there are; the generator moves to core N when there is one, else it shares core 1 with a
worker); its CPU and RSS are summed over the primary and every worker, and the report adds a
row per process (connections, events written, CPU, RSS); run only when --servers names it.
A server that cannot run here is skipped with one line saying what is missing.

Options:
${lines.join('\n')}
`
}

function positive(flag: string, raw: string): number {
  const n = Number(raw)
  if (raw.trim() === '' || !Number.isSafeInteger(n) || n < 1)
    throw new RangeError(`--${flag} expects a positive integer, got ${JSON.stringify(raw)}`)
  return n
}

function listOf<T extends string>(flag: string, raw: string, known: readonly T[]): T[] {
  const items = raw.split(',').filter((item) => item !== '')
  if (items.length === 0) throw new RangeError(`--${flag} expects a list: ${known.join(',')}`)
  for (const item of items) {
    if (!(known as readonly string[]).includes(item))
      throw new RangeError(`--${flag}: unknown ${JSON.stringify(item)}; known: ${known.join(', ')}`)
  }
  return items as T[]
}

function loopbackUrl(raw: string): string {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new RangeError(`--url expects a URL, got ${JSON.stringify(raw)}`)
  }
  if (url.protocol !== 'http:')
    throw new RangeError(`--url expects an http: URL (the bench speaks plain HTTP/1.1), got ${raw}`)
  // The bench opens thousands of connections: it never aims them at another machine.
  if (!/^127\./.test(url.hostname) && url.hostname !== 'localhost')
    throw new RangeError(`--url must be a loopback address (127.0.0.0/8), got ${url.hostname}`)
  return url.href
}

/** The command line as the results record it: a publish key never lands in a file. */
function commandLine(argv: readonly string[]): string {
  const shown = argv.map((arg, i) =>
    argv[i - 1] === '--key' ? '***' : arg.startsWith('--key=') ? '--key=***' : arg,
  )
  return ['ssehub bench', ...shown].join(' ')
}

/**
 * Parses `ssehub bench` arguments. `help` is true for `--help`/`-h` (then `options` is undefined).
 * Throws `TypeError` (an unknown flag) or `RangeError` (a bad value) with a message for the user.
 */
export function parseBenchArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): { readonly help: true } | { readonly help: false; readonly options: BenchOptions } {
  const spec: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  }
  for (const f of benchFlags) spec[f.flag] = { type: 'string' }
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: spec,
  }) as { values: Record<string, string | boolean | undefined> }
  if (values.help === true) return { help: true }
  const raw = (flag: string): string => {
    const value = values[flag]
    if (typeof value === 'string') return value
    return benchFlags.find((f) => f.flag === flag)?.default ?? ''
  }
  const numbers = {} as Record<NumberKey, number>
  for (const [flag, key] of Object.entries(numberFlags)) numbers[key] = positive(flag, raw(flag))
  const url = typeof values.url === 'string' ? loopbackUrl(values.url) : undefined
  if (url !== undefined && typeof values.servers === 'string')
    throw new RangeError('--url and --servers exclude each other: --url benches that hub alone')
  const key = typeof values.key === 'string' ? values.key : env.SSEHUB_PUBLISH_KEY
  let out = raw('out')
  if (out === '') throw new RangeError('--out expects a path prefix, got ""')
  // `--out results/` names a folder: the files go into it as capacity.*.
  if (out.endsWith('/')) out += 'capacity'
  return {
    help: false,
    options: {
      servers: url === undefined ? listOf('servers', raw('servers'), serverNames) : [],
      url,
      key: key === '' ? undefined : key,
      ...numbers,
      subscriberCounts: raw('subscribers')
        .split(',')
        .map((s) => positive('subscribers', s)),
      scenarios: listOf('scenarios', raw('scenarios'), scenarioNames),
      out,
      command: commandLine(argv),
    },
  }
}
