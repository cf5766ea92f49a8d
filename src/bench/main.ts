/**
 * The bench process that `ssehub bench` starts (src/cli/bench.ts) with plain node: it reads the
 * options the CLI resolved from `SSEHUB_BENCH_OPTIONS`, pins itself to core 1 (see placement()), runs, writes the
 * JSON, Markdown and SVG files, and exits 0 when every scenario ran, 1 otherwise. A process of
 * its own: the pinning, the exit hook that kills the servers it started, and the exit code belong
 * to the bench, not to whoever called the CLI.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { BENCH_OPTIONS_ENV, type BenchOptions } from './options.js'
import { writeResults } from './report.js'
import { runCapacityBench, runPlacement } from './run.js'
import { hasTaskset } from './servers.js'

async function main(): Promise<number> {
  const json = process.env[BENCH_OPTIONS_ENV]
  if (json === undefined) {
    process.stderr.write('ssehub bench: this is the bench process; run `ssehub bench` instead\n')
    return 2
  }
  const options = JSON.parse(json) as BenchOptions
  // The output folder first: a path that cannot be written fails now, not after a whole run.
  mkdirSync(dirname(options.out), { recursive: true })
  // The generator on core 1 (core N past the hub of ssehub-workers, where there is one), every
  // thread of it (workers inherit the mask of their creator).
  if (hasTaskset) {
    const core = String(runPlacement(options).generatorCore)
    spawnSync('taskset', ['-a', '-p', '-c', core, String(process.pid)], { stdio: 'ignore' })
  }
  const log = (line: string): void => void process.stdout.write(`${line}\n`)
  const results = await runCapacityBench(options, log)
  const written = writeResults(options.out, results)
  log(`wrote ${written.join(', ')}`)
  return Object.keys(results.failures).length === 0 ? 0 : 1
}

// A signal ends the run; the exit hook in servers.ts stops the servers it started.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130))

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `ssehub bench: ${error instanceof Error ? error.message : String(error)}\n`,
    )
    process.exit(1)
  },
)
