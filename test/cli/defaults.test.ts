/**
 * Defaults once: each layer exports its defaults object, and this suite ties everything that
 * repeats them to it — the `@default` TSDoc tags of each options interface, the `ssehub serve`
 * flag table and `--help`, the README's Options table and docs/security.md's limits table.
 * Nothing is generated at build time; when one of them drifts, a test here names it.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { DURABLE_BROKER_DEFAULTS } from '../../src/broker/durable-options.js'
import { MEMORY_BROKER_DEFAULTS } from '../../src/broker/memory.js'
import { REDIS_BROKER_DEFAULTS } from '../../src/broker/redis.js'
import { CLI_DEFAULTS, serveHelp, serveSpecs, type FlagSpec } from '../../src/cli/serve-flags.js'
import { parseServeArgs } from '../../src/cli/serve-options.js'
import { HUB_DEFAULTS } from '../../src/hub/hub-options.js'
import { JWT_DEFAULTS } from '../../src/server/auth.js'
import { SERVER_DEFAULTS, resolveServerOptions } from '../../src/server/server-options.js'
import { SHOWCASE_DEFAULTS } from '../../src/showcase/index.js'

function read(path: string): string {
  return readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8')
}

interface Layer {
  readonly file: string
  readonly name: string
  readonly defaults: object
  /** Fields with no default value, and why. */
  readonly noDefault: Readonly<Record<string, string>>
}

const layers: readonly Layer[] = [
  {
    file: 'src/hub/hub-options.ts',
    name: 'HubOptions',
    defaults: HUB_DEFAULTS,
    noDefault: { broker: 'a MemoryBroker built from the history options' },
  },
  {
    file: 'src/broker/memory.ts',
    name: 'MemoryBrokerOptions',
    defaults: MEMORY_BROKER_DEFAULTS,
    noDefault: { epoch: 'random per broker' },
  },
  {
    file: 'src/broker/durable-options.ts',
    name: 'DurableBrokerOptions',
    defaults: DURABLE_BROKER_DEFAULTS,
    noDefault: { dataDir: "required (the CLI's default is CLI_DEFAULTS.dataDir)" },
  },
  {
    file: 'src/broker/redis-options.ts',
    name: 'RedisBrokerOptions',
    defaults: REDIS_BROKER_DEFAULTS,
    noDefault: { client: 'required', nodeId: 'the host name and pid of the process' },
  },
  {
    file: 'src/server/server-options.ts',
    name: 'HubServerOptions',
    defaults: SERVER_DEFAULTS,
    noDefault: { hub: 'one is created from the options' },
  },
  { file: 'src/server/auth.ts', name: 'JwtOptions', defaults: JWT_DEFAULTS, noDefault: {} },
  {
    file: 'src/showcase/index.ts',
    name: 'ShowcaseOptions',
    defaults: SHOWCASE_DEFAULTS,
    noDefault: {},
  },
]

/** `defaults[key]`, for a defaults object typed by its layer. */
const valueOf = (defaults: object, key: string): unknown =>
  (defaults as Record<string, unknown>)[key]

/**
 * Defaults computed from other options: the defaults object holds `null` ("computed"), the TSDoc
 * says how, `--help` shows `shown`, and `effective` is the value the resolver gives.
 */
const computed = {
  publishBurst: {
    docSays: /`null`: twice the rate/,
    shown: '2 x rate',
    effective: 2 * (SERVER_DEFAULTS.publishRatePerSecond ?? 0),
  },
} as const

/** Options with no `ssehub serve` flag, and why. */
const notFlags: Readonly<Record<string, string>> = {
  mounts: 'mount factories are code, not text',
  onAuthRefused: 'a callback is code, not text (serve logs refusals itself)',
  metricsSource: 'a callback is code, not text (serve --workers sets it in each worker)',
}

/** The fields of an exported interface in `source`: name -> its TSDoc (or '' without one). */
function interfaceFields(source: string, name: string): Map<string, string> {
  const start = source.search(new RegExp(`^export interface ${name}\\b[^{]*\\{$`, 'm'))
  expect(start, `interface ${name}`).toBeGreaterThanOrEqual(0)
  const body = source.slice(start, source.indexOf('\n}\n', start))
  const fields = new Map<string, string>()
  // A field is `readonly name?:` at the body's indentation, after its TSDoc (if any).
  const field = /(?:\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*)?^ {2}readonly (\w+)\??:/gm
  for (const match of body.matchAll(field)) fields.set(match[2]!, match[1] ?? '')
  return fields
}

/** The `@default` literal of a TSDoc comment, parsed: `'text'`, a number, `null`, `true`, `[]`. */
function tsdocDefault(doc: string): { found: false } | { found: true; value: unknown } {
  const match = /@default\s+(.+?)\s*$/m.exec(doc)
  if (match === null) return { found: false }
  const literal = match[1]!
  const quoted = /^'(.*)'$/.exec(literal)
  return { found: true, value: quoted === null ? JSON.parse(literal) : quoted[1] }
}

/** The layers the server and the CLI configure (the Redis broker only through `--redis*`). */
const serveLayers = [HUB_DEFAULTS, MEMORY_BROKER_DEFAULTS, SERVER_DEFAULTS, JWT_DEFAULTS]

/** The default of the option a flag sets, looked up in the layer that owns it. */
function layerDefault(spec: FlagSpec): unknown {
  if (spec.key === 'redisPrefix') return REDIS_BROKER_DEFAULTS.prefix
  if (spec.key === 'presenceTtlMs') return REDIS_BROKER_DEFAULTS.presenceTtlMs
  // The durable store's own options (its history bounds are the memory broker's, checked there).
  if (spec.key === 'fsync' || spec.key === 'historyMaxBytes')
    return DURABLE_BROKER_DEFAULTS[spec.key]
  const owners = [CLI_DEFAULTS, ...serveLayers, SHOWCASE_DEFAULTS].filter((d) => spec.key in d)
  expect(owners, `layers holding ${spec.key}`).toHaveLength(1)
  return valueOf(owners[0]!, spec.key)
}

/** `--help` as the user reads it: flag -> the default it shows. */
function helpDefaults(): Map<string, string> {
  const shown = new Map<string, string>()
  for (const match of serveHelp().matchAll(/^ {2}--([a-z-]+) .*\[default: (.+); env \w+\]$/gm))
    shown.set(match[1]!, match[2]!)
  return shown
}

/** The value of `spec`'s option after parsing the command line `args`. */
function parsedValue(spec: FlagSpec, args: string[]): unknown {
  const redisOnly = { redisPrefix: 'prefix', nodeId: 'nodeId', presenceTtlMs: 'presenceTtlMs' }
  if (spec.key in redisOnly) {
    // The Redis broker's flags need --redis (alone they are refused, not ignored).
    const config = parseServeArgs(['--redis', 'redis://127.0.0.1:6379', ...args], {})
    return (config.redisOptions as Record<string, unknown>)[
      redisOnly[spec.key as keyof typeof redisOnly]
    ]
  }
  const config = parseServeArgs(args, {})
  if (
    spec.key === 'port' ||
    spec.key === 'host' ||
    spec.key === 'workers' ||
    spec.key === 'redisUrl' ||
    spec.key === 'logFormat'
  )
    return config[spec.key]
  if (spec.key === 'store') return config.store
  if (spec.key === 'dataDir' || spec.key === 'fsync' || spec.key === 'historyMaxBytes')
    return config.durable?.[spec.key]
  return (config.options as Record<string, unknown>)[spec.key]
}

/** The rows of the first Markdown table after `heading`, as cells. */
function tableAfter(markdown: string, heading: string): string[][] {
  const start = markdown.indexOf(`\n${heading}\n`)
  expect(start, heading).toBeGreaterThanOrEqual(0)
  const lines = markdown.slice(start).split('\n')
  const first = lines.findIndex((line) => line.startsWith('|'))
  const rows: string[][] = []
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break
    rows.push(
      line
        .slice(1, -1)
        .split(' | ')
        .map((cell) => cell.trim()),
    )
  }
  return rows
}

const flagsIn = (cell: string): string[] => [...cell.matchAll(/`--([a-z-]+)`/g)].map((m) => m[1]!)

/** A defaults cell split per flag: one value for each, or one value for all of them. */
function perFlag(flags: readonly string[], cell: string): Map<string, string> {
  const values = cell.split(/,\s+/).map((value) => value.replaceAll('`', '').trim())
  expect(
    values.length === flags.length || values.length === 1,
    `${cell} for ${flags.join(', ')}`,
  ).toBe(true)
  return new Map(flags.map((flag, i) => [flag, values.length === 1 ? values[0]! : values[i]!]))
}

const units: Readonly<Record<string, number>> = {
  '': 1,
  '/s': 1,
  entries: 1,
  KiB: 1024,
  MiB: 1024 * 1024,
  ms: 1,
  s: 1000,
  min: 60_000,
  h: 3_600_000,
}

/** A default as docs/security.md writes it for people ("10,000", "1 MiB", "1 h"), as a value. */
function humanValue(text: string): unknown {
  if (text === 'off' || text === 'none') return null
  const match = /^(?:[a-z]+ )?([\d,]+)\s*(KiB|MiB|ms|s|min|h|\/s|entries)?$/.exec(text)
  if (match === null) return text
  return Number(match[1]!.replaceAll(',', '')) * units[match[2] ?? '']!
}

describe('defaults once', () => {
  describe.each(layers)('$name ($file)', ({ file, name, defaults, noDefault }) => {
    const fieldsOf = (): Map<string, string> => interfaceFields(read(file), name)

    it("gives each field's default in TSDoc `@default`, equal to the exported defaults", () => {
      for (const [field, doc] of fieldsOf()) {
        const tag = tsdocDefault(doc)
        if (field in noDefault) {
          expect(tag.found, `${name}.${field} has no default`).toBe(false)
          continue
        }
        expect(tag.found, `${name}.${field} needs a @default`).toBe(true)
        expect(field in defaults, `${name}.${field} is in the defaults object`).toBe(true)
        if (tag.found)
          expect(tag.value, `${name}.${field} @default`).toEqual(valueOf(defaults, field))
      }
    })

    it('has a field with a `@default` for each key of the defaults object', () => {
      const fields = fieldsOf()
      for (const key of Object.keys(defaults)) {
        expect(fields.has(key), `${name} has a field ${key}`).toBe(true)
        expect(tsdocDefault(fields.get(key) ?? '').found, `${name}.${key} @default`).toBe(true)
      }
    })

    it('says how a computed default is computed', () => {
      const fields = fieldsOf()
      for (const [key, { docSays }] of Object.entries(computed)) {
        if (!fields.has(key)) continue
        expect(valueOf(defaults, key), `${key} is computed`).toBeNull()
        expect(fields.get(key)).toMatch(docSays)
      }
    })
  })

  it('computes publishBurst from the rate', () => {
    expect(resolveServerOptions({}).publishBurst).toBe(computed.publishBurst.effective)
    expect(resolveServerOptions({ publishRatePerSecond: 7 }).publishBurst).toBe(14)
  })

  it('has a serve flag for every server, hub, history, JWT and showcase option', () => {
    const keys = new Set<string>(serveSpecs.map((spec) => spec.key))
    for (const defaults of [...serveLayers, SHOWCASE_DEFAULTS]) {
      for (const key of Object.keys(defaults))
        expect(keys.has(key) || key in notFlags, `a flag for ${key}`).toBe(true)
    }
  })

  it('shows for each serve flag the default that typing it gives', () => {
    const shown = helpDefaults()
    expect([...shown.keys()]).toEqual(serveSpecs.map((spec) => spec.flag))
    for (const spec of serveSpecs) {
      const text = shown.get(spec.flag)!
      const value = layerDefault(spec)
      const label = `--${spec.flag} [default: ${text}]`
      if (spec.key in computed) {
        expect(text, label).toBe(computed[spec.key as keyof typeof computed].shown)
        continue
      }
      const empty =
        value === null ||
        (Array.isArray(value) && value.length === 0) ||
        (typeof value === 'object' && Object.keys(value).length === 0)
      if (empty) {
        // Nothing to type: `off` for a limit or a timer, `none` for the rest.
        if (spec.kind === 'nullable-int') {
          expect(text, label).toBe('off')
          expect(parsedValue(spec, [`--${spec.flag}`, 'off']), label).toBeNull()
        } else {
          expect(text, label).toMatch(/^none\b/)
        }
        continue
      }
      if (spec.kind === 'flag') {
        // A `--no-*` flag is false while its option is true.
        expect(typeof value, label).toBe('boolean')
        expect(text, label).toBe(
          String(spec.flag.startsWith('no-') ? value !== true : value === true),
        )
        expect(parsedValue(spec, [`--${spec.flag}=${text}`]), label).toEqual(value)
        continue
      }
      expect(parsedValue(spec, [`--${spec.flag}`, text]), label).toEqual(value)
    }
  })

  it("lists exactly the serve flags in the README's Options table, with --help's defaults", () => {
    const shown = helpDefaults()
    const listed = new Map<string, string>()
    for (const [flagCell = '', defaultCell = ''] of tableAfter(read('README.md'), '## Options')) {
      for (const [flag, text] of perFlag(flagsIn(flagCell), defaultCell)) {
        expect(listed.has(flag), `--${flag} listed once`).toBe(false)
        listed.set(flag, text)
      }
    }
    // One comparison, so that a failure shows every missing flag and every differing default.
    expect(Object.fromEntries(listed)).toEqual(Object.fromEntries(shown))
  })

  it("gives in docs/security.md's limits table the defaults of the flags and options it names", () => {
    const rows = tableAfter(
      read('docs/security.md'),
      '## Limits (all configurable; defaults are safe for the open internet)',
    )
    expect(rows.length).toBeGreaterThan(10)
    // Collected, then compared at once, so that a failure lists every row that differs.
    const documented: Record<string, unknown> = {}
    const actual: Record<string, unknown> = {}
    for (const [limit = '', names = '', defaultCell = ''] of rows) {
      // A parenthesised note after the values says more about them ("token subject or IP").
      const cell = defaultCell.replace(/\s*\(.*\)$/, '')
      const flags = flagsIn(names)
      const options = [...names.matchAll(/`([a-z][A-Za-z]+)`/g)].map((m) => m[1]!)
      if (flags.length === 0) {
        // A row that names an option without a flag (e.g. the Redis broker's maxReplayScan).
        for (const option of options) {
          const owner = [...serveLayers, REDIS_BROKER_DEFAULTS].find((d) => option in d)
          expect(owner, `${limit}: ${option} is an option`).toBeDefined()
          documented[`${limit}: ${option}`] = humanValue(cell)
          actual[`${limit}: ${option}`] = owner === undefined ? undefined : valueOf(owner, option)
        }
        continue
      }
      for (const [flag, text] of perFlag(flags, cell)) {
        const spec = serveSpecs.find((candidate) => candidate.flag === flag)
        expect(spec, `${limit}: --${flag} is a serve flag`).toBeDefined()
        if (spec === undefined) continue
        if (options.length > 0) expect(options, `${limit}: option of --${flag}`).toContain(spec.key)
        documented[`${limit}: --${flag}`] = humanValue(text)
        actual[`${limit}: --${flag}`] =
          spec.key in computed
            ? computed[spec.key as keyof typeof computed].effective
            : layerDefault(spec)
      }
    }
    expect(Object.keys(documented).length).toBeGreaterThan(10)
    expect(documented).toEqual(actual)
  })
})
