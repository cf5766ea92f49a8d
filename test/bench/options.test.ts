import { describe, expect, it } from 'vitest'
import {
  benchFlags,
  benchHelp,
  parseBenchArgs,
  scenarioNames,
  defaultServers,
  serverNames,
  type BenchOptions,
} from '../../src/bench/options.js'
import { placement } from '../../src/bench/servers.js'

function parse(argv: string[], env: Record<string, string> = {}): BenchOptions {
  const parsed = parseBenchArgs(argv, env)
  if (parsed.help) throw new Error('help')
  return parsed.options
}

describe('ssehub bench options', () => {
  it('defaults to every server and scenario, the committed sizes and bench/results/capacity', () => {
    expect(parse([])).toEqual({
      servers: defaultServers,
      url: undefined,
      key: undefined,
      connections: 10_000,
      held: 19_500,
      subscriberCounts: [1000, 10_000],
      rate: 10,
      seconds: 5,
      clients: 1000,
      slowSubscribers: 100,
      slowRate: 400,
      workers: 2,
      hubWorkers: 2,
      maxPublishes: 100_000,
      repeat: 1,
      scenarios: scenarioNames,
      out: 'bench/results/capacity',
      command: 'ssehub bench',
    })
  })

  it('runs ssehub-redis (ssehub on the Redis broker) only when --servers names it', () => {
    expect(defaultServers).not.toContain('ssehub-redis')
    expect(serverNames).toContain('ssehub-redis')
    expect(parse(['--servers', 'ssehub,ssehub-redis']).servers).toEqual(['ssehub', 'ssehub-redis'])
    expect(benchHelp()).toContain('ssehub-redis')
  })

  it('runs ssehub-workers (ssehub serve --workers N) only when named, N from --hub-workers', () => {
    expect(defaultServers).not.toContain('ssehub-workers')
    expect(parse(['--servers', 'ssehub,ssehub-workers', '--hub-workers', '4'])).toMatchObject({
      servers: ['ssehub', 'ssehub-workers'],
      hubWorkers: 4,
      // --workers stays the load generator's threads.
      workers: 2,
    })
    expect(() => parse(['--hub-workers', '0'])).toThrow(
      '--hub-workers expects a positive integer, got "0"',
    )
    expect(benchHelp()).toContain('ssehub-workers')
  })

  it('places ssehub-workers on cores 0..N-1 and the generator past them, or says it shares', () => {
    expect(placement(null, 2)).toEqual({ hubCores: '0', generatorCore: 1, shared: false })
    expect(placement(2, 2)).toEqual({ hubCores: '0-1', generatorCore: 1, shared: true })
    expect(placement(4, 2)).toEqual({ hubCores: '0-1', generatorCore: 1, shared: true })
    expect(placement(2, 4)).toEqual({ hubCores: '0-1', generatorCore: 2, shared: false })
    expect(placement(1, 4)).toEqual({ hubCores: '0', generatorCore: 1, shared: false })
  })

  it('lists every flag with its default in --help, within 100 columns', () => {
    const help = benchHelp()
    for (const flag of benchFlags) {
      expect(help).toContain(`--${flag.flag} ${flag.placeholder}`)
      if (flag.default !== undefined) expect(help).toContain(`(default ${flag.default})`)
    }
    for (const line of help.split('\n')) expect(line.length).toBeLessThanOrEqual(100)
    expect(parseBenchArgs(['--help'], {})).toEqual({ help: true })
  })

  it('takes a loopback --url alone, the key from --key or SSEHUB_PUBLISH_KEY, and never records it', () => {
    const env = { SSEHUB_PUBLISH_KEY: 'from-env' }
    expect(parse(['--url', 'http://127.0.0.1:8080'], env)).toMatchObject({
      servers: [],
      url: 'http://127.0.0.1:8080/',
      key: 'from-env',
    })
    const options = parse(['--url', 'http://localhost:9', '--key', 'k1'], env)
    expect(options.key).toBe('k1')
    expect(options.command).toBe('ssehub bench --url http://localhost:9 --key ***')
    expect(parse(['--key=k2']).command).toBe('ssehub bench --key=***')
    expect(() => parse(['--url', 'http://10.0.0.1/'])).toThrow(RangeError)
    expect(() => parse(['--url', 'https://127.0.0.1/'])).toThrow(/http: URL/)
    expect(() => parse(['--url', 'http://127.0.0.1/', '--servers', 'ssehub'])).toThrow(
      /exclude each other/,
    )
  })

  it('refuses bad numbers, lists and unknown flags with the message a user needs', () => {
    expect(() => parse(['--seconds', '0'])).toThrow('--seconds expects a positive integer, got "0"')
    expect(() => parse(['--subscribers', '10,x'])).toThrow('--subscribers expects a positive')
    expect(() => parse(['--scenarios', 'idle,naps'])).toThrow(/unknown "naps"; known: idle/)
    expect(() => parse(['--servers', ''])).toThrow(/--servers expects a list/)
    expect(() => parse(['--nope'])).toThrow(TypeError)
  })

  it('reads --out ending in / as a folder', () => {
    expect(parse(['--out', 'results/']).out).toBe('results/capacity')
    expect(parse(['--out', 'a/b/run1']).out).toBe('a/b/run1')
  })
})
