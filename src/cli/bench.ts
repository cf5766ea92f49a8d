import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { builtFile } from '../bench/built.js'
import {
  BENCH_OPTIONS_ENV,
  benchHelp,
  parseBenchArgs,
  type BenchOptions,
} from '../bench/options.js'
import { UsageError, type CliIo } from './io.js'

/**
 * `ssehub bench`: parses the flags (a bad one is a usage error before anything starts), then
 * runs the capacity benchmark (src/bench) in a process of its own with plain node, relaying its
 * output. Resolves with its exit code: 0 when every scenario ran, 1 when one failed.
 */
export async function runBench(argv: string[], io: CliIo): Promise<number> {
  let options: BenchOptions
  try {
    const parsed = parseBenchArgs(argv, io.env)
    if (parsed.help) {
      io.stdout(benchHelp())
      return 0
    }
    options = parsed.options
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError)
      throw new UsageError(error.message)
    throw error
  }
  const script = builtFile('main.js')
  // Only in a checkout that was not built: the package ships dist/.
  if (!existsSync(script)) throw new UsageError(`${script} is missing: run \`npm run build\``)
  const child = spawn(process.execPath, [script], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, [BENCH_OPTIONS_ENV]: JSON.stringify(options) },
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
