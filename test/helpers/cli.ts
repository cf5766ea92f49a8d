import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { waitFor } from './wait.js'

/** The built CLI (`npm test` builds first). */
export const binPath = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))

/** A spawned `ssehub` process with its output collected. */
export interface CliProcess {
  readonly child: ChildProcess
  stdout(): string
  stderr(): string
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>
}

/** kill -9 of `cli` when it still runs, and its exit awaited. */
export async function killCli(cli: CliProcess): Promise<void> {
  if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGKILL')
  await cli.exited
}

/** {@link killCli} of every process of `list`, which is emptied (a test file's `afterEach`). */
export async function killAll(list: CliProcess[]): Promise<void> {
  for (const cli of list.splice(0)) await killCli(cli)
}

/** Spawns `node dist/cli/main.js ...args` with `env` added to a clean environment. */
export function runCli(args: string[], env: Record<string, string> = {}): CliProcess {
  return spawnCli(process.execPath, [binPath, ...args], { env })
}

/**
 * Spawns `command` (an `ssehub` binary, or node with the CLI's path) with output collected, in an
 * environment without the caller's `SSEHUB_*` variables plus `env`.
 */
export function spawnCli(
  command: string,
  args: string[],
  options: { readonly env?: Record<string, string>; readonly cwd?: string } = {},
): CliProcess {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('SSEHUB_')),
  )
  // `serve` keeps its history in ./ssehub-data by default: each process gets a folder of its own
  // (removed when it exits) unless the test names one, so that hubs run side by side.
  // (Only for `serve` on its own store: with Redis, a data folder is refused.)
  // `serve` is the default command: `ssehub --port 0` serves too.
  const verb = args.find((arg) => !arg.endsWith('main.js'))
  const own =
    (verb === undefined || verb === 'serve' || verb.startsWith('-')) &&
    !['SSEHUB_DATA_DIR', 'SSEHUB_STORE', 'SSEHUB_REDIS_URL'].some(
      (name) => options.env?.[name] !== undefined,
    ) &&
    !args.some((arg) => /^--(data-dir|store|redis)(=|$)/.test(arg))
  const dataDir = own ? mkdtempSync(join(tmpdir(), 'ssehub-cli-')) : null
  const child = spawn(command, args, {
    env: { ...clean, ...(dataDir === null ? {} : { SSEHUB_DATA_DIR: dataDir }), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk))
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      if (dataDir !== null) rmSync(dataDir, { recursive: true, force: true })
      resolve(code)
    }),
  )
  return { child, stdout: () => out, stderr: () => err, exited }
}

/** Starts `ssehub serve` on a free port and resolves with its URL. */
export async function startCliHub(
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<{ url: string; cli: CliProcess }> {
  const cli = runCli(['serve', '--port', '0', ...args], env)
  const match = await waitFor(
    () =>
      /listening on (http:\/\/\S+)/.exec(cli.stdout()) ??
      (cli.child.exitCode !== null ? Promise.reject(new Error(cli.stderr())) : null),
    'the hub to listen',
    10_000,
  )
  return { url: match[1]!, cli }
}
