import { isSseError } from '../errors.js'
import { createHubServer } from '../server/server.js'
import { UsageError, type CliIo } from './io.js'
import { parseServeArgs, serveHelp } from './serve-options.js'

/**
 * `ssehub serve`: runs the hub server until `io.signal` aborts (SIGINT/SIGTERM), then shuts down
 * gracefully and returns 0.
 */
export async function runServe(argv: readonly string[], io: CliIo): Promise<number> {
  const config = parseServeArgs(argv, io.env)
  if (config.help) {
    io.stdout(serveHelp())
    return 0
  }
  const hubServer = createHubServer(config.options)
  hubServer.hub.on('error', (error) => io.stderr(`ssehub: ${error.message}\n`))
  try {
    const address = await hubServer.listen(config.port, config.host)
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
    io.stdout(
      `ssehub listening on http://${host}:${address.port} (${hubServer.hub.broker.health().broker} broker)\n`,
    )
  } catch (error) {
    await hubServer.close()
    if (isSseError(error)) throw new UsageError(error.message)
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE')
      throw new UsageError(
        `port ${config.port} on ${config.host} is in use; pick another with --port`,
      )
    if (code === 'EACCES')
      throw new UsageError(
        `no permission to listen on ${config.host}:${config.port}; use a port above 1023`,
      )
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
      throw new UsageError(`cannot listen on ${config.host}: no such local address`)
    throw error
  }
  if (!io.signal.aborted) {
    await new Promise<void>((resolve) =>
      io.signal.addEventListener('abort', () => resolve(), { once: true }),
    )
  }
  io.stdout('ssehub: shutting down\n')
  await hubServer.close()
  return 0
}
