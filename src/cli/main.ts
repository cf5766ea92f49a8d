#!/usr/bin/env node
import { readFileSync } from 'node:fs'
import { didYouMean } from '../closest.js'
import { UsageError, type CliIo } from './io.js'
import { runPublish } from './publish.js'
import { runServe } from './serve.js'

const usage = `Usage: ssehub <command> [options]

Commands:
  serve      run the hub server (the default command)
  listen     print the events of an SSE stream
  publish    publish an event to a hub
  bench      measure how many connections and events/s this machine holds
Run 'ssehub <command> --help' for a command's options.
`

const commands = ['serve', 'listen', 'publish', 'bench', 'help']

type Command = (argv: string[], io: CliIo) => Promise<number>

async function loadListen(): Promise<Command> {
  // Loaded on demand: `serve` does not pay for the client.
  return (await import('./listen.js')).runListen
}

/** Runs the CLI; resolves with the exit code. Bad usage: one line on stderr, exit 2. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  const [first, ...rest] = argv
  try {
    if (first === undefined || first.startsWith('-')) {
      if (first === '--version') {
        const pkg = JSON.parse(
          readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
        ) as { version: string }
        io.stdout(`${pkg.version}\n`)
        return 0
      }
      if (first === '--help' || first === '-h') {
        io.stdout(usage)
        return 0
      }
      return await runServe(argv, io)
    }
    switch (first) {
      case 'serve':
        return await runServe(rest, io)
      case 'publish':
        return await runPublish(rest, io)
      case 'listen':
        return await (
          await loadListen()
        )(rest, io)
      case 'bench':
        return await (await import('./bench.js')).runBench(rest, io)
      case 'help':
        io.stdout(usage)
        return 0
      default:
        throw new UsageError(
          `unknown command ${JSON.stringify(first)}${didYouMean(first, commands) || `; commands: ${commands.join(', ')}`}`,
        )
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`ssehub: ${error.message}\n`)
      return 2
    }
    throw error
  }
}

const controller = new AbortController()
let signals = 0
const onSignal = (): void => {
  // The first signal shuts down gracefully; a second one exits at once.
  if (++signals > 1) process.exit(1)
  controller.abort()
}
process.on('SIGINT', onSignal)
process.on('SIGTERM', onSignal)

main(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  signal: controller.signal,
}).then(
  (code) => {
    process.exitCode = code
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    // Everything is closed; should a stray handle (a keep-alive socket) linger, do not hang on it.
    setTimeout(() => process.exit(code), 1000).unref()
  },
  (error: unknown) => {
    process.stderr.write(`ssehub: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exitCode = 1
  },
)
