import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { runBench } from '../../src/cli/bench.js'
import { UsageError, type CliIo } from '../../src/cli/io.js'
import { createHubServer } from '../../src/server/index.js'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

/** A loopback port nothing listens on (it was free a moment ago). */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        resolve(typeof address === 'object' && address !== null ? address.port : 0),
      )
    })
    server.on('error', reject)
  })
}

function io(): CliIo & { out: () => string } {
  let out = ''
  return {
    stdout: (text) => void (out += text),
    stderr: (text) => void (out += text),
    env: {},
    signal: new AbortController().signal,
    out: () => out,
  }
}

/**
 * Runs `ssehub bench` with `args` (tiny phases) into a folder of a temp dir that does not exist
 * yet; resolves with its exit code. The bench process runs the built files (`npm test` builds).
 */
async function tinyBench(args: string[]): Promise<{ code: number; cli: string; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-bench-smoke-'))
  dirs.push(dir)
  const out = join(dir, 'not/yet/there/capacity')
  const cli = io()
  const code = await runBench(
    [...args, '--seconds', '1', '--workers', '1', '--max-publishes', '200', '--out', out],
    cli,
  )
  return { code, cli: cli.out(), out }
}

describe('ssehub bench', () => {
  it('runs a tiny capacity bench against ssehub end to end and writes JSON with 0 missed', async () => {
    const { code, cli, out } = await tinyBench([
      ...['--servers', 'ssehub', '--scenarios', 'idle,broadcast,one-to-one'],
      ...['--connections', '50', '--held', '50', '--subscribers', '50', '--rate', '20'],
      ...['--clients', '50'],
    ])
    expect(code, cli).toBe(0)
    const results = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as {
      machine: Record<string, unknown>
      versions: Record<string, string>
      command: string
      idle: { server: string; held: { opened: number; failed: number } }[]
      phases: {
        server: string
        scenario: string
        mode: string
        published: number
        missed: number
        delivered: number
      }[]
    }
    expect(results.command).toMatch(/^ssehub bench /)
    expect(results.versions.ssehub).toBeTypeOf('string')
    expect(results.machine.cores).toBeTypeOf('number')
    expect(results.idle[0]!.held).toEqual({ target: 50, opened: 50, failed: 0 })
    expect(results.phases.map((p) => `${p.scenario} ${p.mode}`)).toEqual([
      'broadcast max',
      'broadcast rate',
      'one-to-one max',
      'one-to-one, 10 events/POST (batch) max',
    ])
    for (const phase of results.phases) {
      expect(phase.published).toBeGreaterThan(0)
      expect(phase.delivered).toBeGreaterThan(0)
      expect(phase.missed).toBe(0)
    }
    expect(readFileSync(`${out}.md`, 'utf8')).toContain('# ssehub capacity benchmark')
    expect(readFileSync(`${out}-latency.svg`, 'utf8')).toMatch(/^<svg /)
  }, 120_000)

  it('runs ssehub on the Redis broker beside the memory broker, with 0 missed, Redis CPU and a comparison section', async () => {
    const { code, cli, out } = await tinyBench([
      ...['--servers', 'ssehub,ssehub-redis', '--scenarios', 'broadcast,one-to-one'],
      ...['--subscribers', '50', '--rate', '20', '--clients', '50'],
    ])
    expect(code, cli).toBe(0)
    const results = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as {
      versions: Record<string, string>
      phases: {
        server: string
        scenario: string
        published: number
        missed: number
        redisCpuMsPer1000Events?: number | null
      }[]
    }
    expect(results.versions['ssehub-redis']).toMatch(/, redis \d/)
    const redis = results.phases.filter((p) => p.server === 'ssehub-redis')
    expect(redis.map((p) => p.scenario)).toEqual(['broadcast', 'broadcast', 'one-to-one'])
    for (const phase of redis) {
      expect(phase.published).toBeGreaterThan(0)
      expect(phase.missed).toBe(0)
      expect(phase.redisCpuMsPer1000Events).toBeTypeOf('number')
    }
    for (const phase of results.phases.filter((p) => p.server === 'ssehub'))
      expect(phase).not.toHaveProperty('redisCpuMsPer1000Events')
    expect(readFileSync(`${out}.md`, 'utf8')).toContain(
      '## The Redis broker against the memory broker',
    )
  }, 120_000)

  it('runs ssehub serve --workers 2 beside ssehub, with 0 missed, the hub summed and a row per process', async () => {
    const { code, cli, out } = await tinyBench([
      ...['--servers', 'ssehub,ssehub-workers', '--hub-workers', '2', '--scenarios', 'broadcast'],
      ...['--subscribers', '50', '--rate', '20'],
    ])
    expect(code, cli).toBe(0)
    const results = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as {
      versions: Record<string, string>
      settings: { hubWorkers: number }
      phases: {
        server: string
        mode: string
        published: number
        delivered: number
        missed: number
        serverCpuPercent: number | null
        processes?: {
          pid: number
          role: string
          node: string | null
          connections: number | null
          eventsOut: number | null
          cpuSeconds: number
          rssBytes: number
        }[]
      }[]
    }
    expect(results.versions['ssehub-workers']).toMatch(/, serve --workers 2$/)
    expect(results.settings.hubWorkers).toBe(2)
    const workers = results.phases.filter((p) => p.server === 'ssehub-workers')
    expect(workers.map((p) => p.mode)).toEqual(['max', 'rate'])
    for (const phase of workers) {
      expect(phase.published).toBeGreaterThan(0)
      expect(phase.missed).toBe(0)
      const processes = phase.processes!
      expect(processes.map((p) => p.role)).toEqual(['primary', 'worker', 'worker'])
      const [primary, ...each] = processes
      expect(primary).toMatchObject({ connections: null, eventsOut: null, node: null })
      expect(new Set(processes.map((p) => p.pid)).size).toBe(3)
      // Every stream on a worker, the 50 spread over both, and every delivered event written
      // by one of them: the per-worker figures add up to the hub's.
      expect(each.reduce((sum, p) => sum + p.connections!, 0)).toBe(50)
      for (const p of each) {
        expect(p.node).toMatch(new RegExp(`:${p.pid}/w\\d+$`))
        expect(p.connections).toBeGreaterThan(0)
        expect(p.rssBytes).toBeGreaterThan(0)
      }
      expect(each.reduce((sum, p) => sum + p.eventsOut!, 0)).toBe(phase.delivered)
    }
    for (const phase of results.phases.filter((p) => p.server === 'ssehub'))
      expect(phase).not.toHaveProperty('processes')
    const md = readFileSync(`${out}.md`, 'utf8')
    expect(md).toContain('## ssehub --workers 2 against ssehub in one process')
    expect(md).toMatch(/\| worker w\d+ \| \d+ \| \d+ \| \d+ \|/)
    expect(md).toContain('| **all** | | 50 |')
  }, 60_000)

  it('runs the node:net floor through the same scenarios, with 0 missed', async () => {
    const { code, cli, out } = await tinyBench([
      ...['--servers', 'node-floor', '--scenarios', 'broadcast,one-to-one'],
      ...['--subscribers', '50', '--rate', '20', '--clients', '50'],
    ])
    expect(code, cli).toBe(0)
    const results = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as {
      versions: Record<string, string>
      phases: { server: string; scenario: string; published: number; missed: number }[]
    }
    expect(results.versions['node-floor']).toMatch(/^node:net, v\d+/)
    expect(results.phases.map((p) => `${p.server} ${p.scenario}`)).toEqual([
      'node-floor broadcast',
      'node-floor broadcast',
      'node-floor one-to-one',
    ])
    for (const phase of results.phases) {
      expect(phase.published).toBeGreaterThan(0)
      expect(phase.missed).toBe(0)
    }
  }, 120_000)

  it('refuses a bad flag and a non-loopback URL with a usage error', async () => {
    await expect(runBench(['--connections', 'lots'], io())).rejects.toThrow(UsageError)
    await expect(runBench(['--url', 'http://example.com/'], io())).rejects.toThrow(/loopback/)
    await expect(runBench(['--nope'], io())).rejects.toThrow(UsageError)
    await expect(runBench(['--servers', 'ssehub,nope'], io())).rejects.toThrow(
      /unknown "nope"; known: ssehub, ssehub-redis, ssehub-workers, better-sse/,
    )
  })

  it('says in one line that no hub answers at --url, and exits 1 before any scenario', async () => {
    const { code, cli } = await tinyBench(['--url', `http://127.0.0.1:${await closedPort()}`])
    expect(code).toBe(1)
    expect(cli).toMatch(
      /^ssehub bench: no hub answers at http:\/\/127\.0\.0\.1:\d+\/healthz \(ECONNREFUSED\)\n$/,
    )
  })

  it('names the missing key when the hub at --url refuses every publish', async () => {
    const hub = createHubServer({ publishKey: 'secret-key-for-the-bench' })
    const address = await hub.listen(0, '127.0.0.1')
    try {
      const url = `http://127.0.0.1:${address.port}`
      const args = ['--url', url, '--scenarios', 'broadcast', '--subscribers', '5']
      const refused = await tinyBench(args)
      expect(refused.code).toBe(1)
      expect(refused.cli).toContain(
        'external broadcast 5 FAILED: Error: every publish was refused (401 Unauthorized): the hub has a publish key, pass it with --key',
      )
      const keyed = await tinyBench([...args, '--key', 'secret-key-for-the-bench'])
      expect(keyed.code, keyed.cli).toBe(0)
      const results = readFileSync(`${keyed.out}.json`, 'utf8')
      expect(results).not.toContain('secret-key-for-the-bench')
      expect((JSON.parse(results) as { command: string }).command).toContain('--key ***')
    } finally {
      await hub.close()
    }
  }, 60_000)
})
