import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { didYouMean } from '../closest.js'
import type { HubServerOptions } from '../server/server.js'
import type { ShowcaseOptions } from '../showcase/index.js'
import { isOrigin } from '../server/cors.js'
import type { HttpRelayUpstream } from '../relay/relays.js'
import { UsageError } from './io.js'
import { parseRelayUpstreams } from './relay-upstreams.js'
import { parseRedisUrl, type RedisTarget } from './redis-url.js'
import type { FsyncPolicy } from '../broker/durable-options.js'
import type { LogFormat } from './log.js'
import {
  CLI_DEFAULTS,
  envOf,
  OTHER_ENV_VARS,
  serveSpecs,
  type FlagSpec,
  type Store,
} from './serve-flags.js'

/*
 * Reads `ssehub serve`'s flags and `SSEHUB_*` env vars, as the table in serve-flags.ts describes
 * them, into the options of the server and of the showcase it mounts.
 */

/** The most worker processes `--workers` takes (a bound on what one primary supervises). */
const MAX_WORKERS = 256

const booleanWords: Record<string, boolean> = {
  '1': true,
  true: true,
  yes: true,
  '0': false,
  false: false,
  no: false,
}

function parseValue(
  spec: FlagSpec,
  raw: string,
  source: string,
  env: Readonly<Record<string, string | undefined>>,
  previous: unknown,
): unknown {
  switch (spec.kind) {
    case 'upstreams': {
      // Repeated flags add upstreams (a flag's wins over the variable's whole list).
      const into = { ...(previous as Record<string, HttpRelayUpstream> | undefined) }
      parseRelayUpstreams(raw, source, env, into)
      return into
    }
    case 'string':
      if (raw === '') throw new UsageError(`${source} needs a non-empty value`)
      return raw
    case 'int':
    case 'nullable-int': {
      if (spec.kind === 'nullable-int' && raw === 'off') return null
      if (!/^\d{1,15}$/.test(raw) || (spec.key !== 'port' && Number(raw) === 0)) {
        throw new UsageError(
          `${source} expects a ${spec.key === 'port' ? 'non-negative' : 'positive'} integer${spec.kind === 'nullable-int' ? " or 'off'" : ''}, got ${JSON.stringify(raw)}`,
        )
      }
      const value = Number(raw)
      if (spec.key === 'port' && value > 65535)
        throw new UsageError(`${source} must be at most 65535, got ${raw}`)
      return value
    }
    case 'flag': {
      const value = booleanWords[raw.toLowerCase()]
      if (value === undefined)
        throw new UsageError(`${source} expects true or false, got ${JSON.stringify(raw)}`)
      return value
    }
    case 'choice': {
      const choices = spec.choices ?? []
      if (!choices.includes(raw)) {
        throw new UsageError(
          `${source} expects ${choices.map((choice) => `'${choice}'`).join(' or ')}, got ${JSON.stringify(raw)}`,
        )
      }
      return raw
    }
    case 'overflow':
      if (raw !== 'reject' && raw !== 'evict') {
        throw new UsageError(`${source} expects 'reject' or 'evict', got ${JSON.stringify(raw)}`)
      }
      return raw
    case 'file': {
      try {
        return readFileSync(raw, 'utf8')
      } catch (error) {
        throw new UsageError(
          `${source}: cannot read ${raw} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
        )
      }
    }
    case 'workers': {
      if (raw === 'auto') return availableParallelism()
      if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_WORKERS)
        throw new UsageError(
          `${source} expects 'auto' or a number of processes from 1 to ${MAX_WORKERS}, got ${JSON.stringify(raw)}`,
        )
      return Number(raw)
    }
    case 'list':
      return raw
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '')
    case 'origins': {
      if (raw === '*') return '*'
      const origins = raw
        .split(',')
        .map((origin) => origin.trim())
        .filter((origin) => origin !== '')
      for (const origin of origins) {
        if (!isOrigin(origin)) {
          throw new UsageError(
            `${source}: ${JSON.stringify(origin)} is not an origin like https://app.example.com`,
          )
        }
      }
      return origins
    }
  }
}

/** What `ssehub serve` configures: the server's options and the showcase's it mounts. */
export type ServeOptions = HubServerOptions & ShowcaseOptions

/** Parsed `serve` command line: server options plus where to listen. */
export interface ServeConfig {
  readonly options: ServeOptions
  readonly port: number
  readonly host: string
  /** Processes serving HTTP (`--workers`; 1: this process alone). */
  readonly workers: number
  /** Redis URL, when the Redis broker is asked for, as given. */
  readonly redisUrl: string | undefined
  /** What {@link ServeConfig.redisUrl} points at: one server or a cluster's seed nodes. */
  readonly redis: RedisTarget | undefined
  /** The Redis broker's options given on the command line (only with `redisUrl`). */
  readonly redisOptions: {
    readonly prefix?: string
    readonly nodeId?: string
    readonly presenceTtlMs?: number
  }
  /** How log lines are written. */
  readonly logFormat: LogFormat
  /** Where history is kept without `--redis`. */
  readonly store: Store
  /** The durable store, when history is kept on disk (`--store durable`, no `--redis`). */
  readonly durable: DurableConfig | null
  readonly help: boolean
}

/** The durable store's settings from the command line (the history bounds are in `options`). */
export interface DurableConfig {
  readonly dataDir: string
  readonly fsync: FsyncPolicy | undefined
  readonly historyMaxBytes: number | null | undefined
}

/** The flags that configure the durable store only. */
const durableKeys = new Set<string>(['dataDir', 'fsync', 'historyMaxBytes'])

function* flagNames(): Generator<string> {
  for (const spec of serveSpecs) yield spec.flag
  yield 'help'
}

const PREFIX = 'SSEHUB_'

/** The flags' keys that are Redis broker options, and the option each sets. */
const REDIS_FLAG_OPTIONS = {
  redisPrefix: 'prefix',
  nodeId: 'nodeId',
  presenceTtlMs: 'presenceTtlMs',
} as const

function* suffixes(names: Iterable<string>): Generator<string> {
  for (const name of names) yield name.slice(PREFIX.length)
}

/**
 * A set `SSEHUB_*` variable that is neither a flag's nor {@link OTHER_ENV_VARS} is a typo (or an
 * old name): refused, naming the closest valid one, rather than silently ignored.
 */
function checkEnvNames(env: Readonly<Record<string, string | undefined>>): void {
  const known = new Set(serveSpecs.map(envOf))
  for (const name of Object.keys(env)) {
    if (!name.startsWith(PREFIX) || known.has(name) || OTHER_ENV_VARS.has(name)) continue
    if (env[name] === undefined) continue
    // Compared without the shared prefix, which would make any two names look alike.
    const hint = didYouMean(name.slice(PREFIX.length), suffixes(known), (rest) => PREFIX + rest)
    throw new UsageError(`unknown variable ${name}${hint === '' ? '; see ssehub --help' : hint}`)
  }
}

/**
 * Parses `serve` flags and `SSEHUB_*` env vars into server options.
 * @throws {UsageError} on an unknown flag or `SSEHUB_*` variable (naming the closest valid one)
 * or a bad value (printed as one line, exit 2).
 */
export function parseServeArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): ServeConfig {
  checkEnvNames(env)
  const values = new Map<FlagSpec, unknown>()
  for (const spec of serveSpecs) {
    const raw = env[envOf(spec)]
    if (raw !== undefined && raw !== '')
      values.set(spec, parseValue(spec, raw, envOf(spec), env, undefined))
  }
  let help = false
  const fromFlags = new Set<FlagSpec>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--help' || arg === '-h') {
      help = true
      continue
    }
    if (!arg.startsWith('--'))
      throw new UsageError(`unexpected argument ${JSON.stringify(arg)}; see ssehub --help`)
    const eq = arg.indexOf('=')
    const name = arg.slice(2, eq === -1 ? undefined : eq)
    const spec = serveSpecs.find((candidate) => candidate.flag === name)
    if (spec === undefined) {
      const hint = didYouMean(name, flagNames(), (flag) => `--${flag}`)
      throw new UsageError(`unknown option --${name}${hint === '' ? '; see ssehub --help' : hint}`)
    }
    if (spec.kind === 'flag') {
      values.set(
        spec,
        eq === -1 ? true : parseValue(spec, arg.slice(eq + 1), `--${name}`, env, undefined),
      )
      continue
    }
    const raw = eq === -1 ? argv[++i] : arg.slice(eq + 1)
    if (raw === undefined) throw new UsageError(`--${name} needs a value`)
    const previous = fromFlags.has(spec) ? values.get(spec) : undefined
    values.set(spec, parseValue(spec, raw, `--${name}`, env, previous))
    fromFlags.add(spec)
  }
  const options: Record<string, unknown> = {}
  let port: number = CLI_DEFAULTS.port
  let host: string = CLI_DEFAULTS.host
  let workers: number = CLI_DEFAULTS.workers
  let redisUrl: string | undefined
  const redisOptions: Record<string, unknown> = {}
  let redisOnly: FlagSpec | undefined
  let logFormat: LogFormat = CLI_DEFAULTS.logFormat
  let store: Store = CLI_DEFAULTS.store
  const durable: Record<string, unknown> = {}
  for (const [spec, value] of values) {
    if (spec.key === 'port') port = value as number
    else if (spec.key === 'store') store = value as Store
    else if (durableKeys.has(spec.key)) durable[spec.key] = value
    else if (spec.key === 'host') host = value as string
    else if (spec.key === 'workers') workers = value as number
    else if (spec.key === 'redisUrl') redisUrl = value as string
    else if (spec.key in REDIS_FLAG_OPTIONS) {
      redisOptions[REDIS_FLAG_OPTIONS[spec.key as keyof typeof REDIS_FLAG_OPTIONS]] = value
      redisOnly = spec
    } else if (spec.key === 'logFormat') logFormat = value as LogFormat
    // --no-dashboard / --no-metrics turn a default-on feature off.
    else if (spec.flag.startsWith('no-')) options[spec.key] = !(value as boolean)
    else options[spec.key] = value
  }
  const redis = redisUrl === undefined ? undefined : parseRedisUrl(redisUrl)
  // A Redis setting without Redis would be silently ignored: say what is missing instead.
  if (redisOnly !== undefined && redisUrl === undefined) {
    throw new UsageError(
      `--${redisOnly.flag} (${envOf(redisOnly)}) applies to the Redis broker: add --redis <url> (${envOf(serveSpecs.find((spec) => spec.key === 'redisUrl')!)}), or drop it`,
    )
  }
  const durableFlag = [...values.keys()].find(
    (spec) => durableKeys.has(spec.key) || spec.key === 'store',
  )
  if (redisUrl !== undefined && durableFlag !== undefined) {
    throw new UsageError(
      `--${durableFlag.flag} is for a single hub's store; with --redis, Redis keeps the history`,
    )
  }
  if (store === 'memory') {
    const flag = [...values.keys()].find((spec) => durableKeys.has(spec.key))
    if (flag !== undefined)
      throw new UsageError(`--${flag.flag} applies to the durable store, not to --store memory`)
  }
  return {
    options,
    port,
    host,
    workers,
    redisUrl,
    redis,
    redisOptions,
    logFormat,
    store,
    durable:
      redisUrl !== undefined || store === 'memory'
        ? null
        : {
            dataDir: (durable.dataDir as string | undefined) ?? CLI_DEFAULTS.dataDir,
            fsync: durable.fsync as FsyncPolicy | undefined,
            historyMaxBytes: durable.historyMaxBytes as number | null | undefined,
          },
    help,
  }
}
