import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { runBench } from '../../src/cli/bench.js'
import { UsageError, type CliIo } from '../../src/cli/io.js'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

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

/** Runs `ssehub bench` with `args` (tiny phases) into a temp dir; resolves with its exit code. */
async function tinyBench(args: string[]): Promise<{ code: number; cli: string; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-bench-smoke-'))
  dirs.push(dir)
  const out = join(dir, 'capacity')
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
  })
})
