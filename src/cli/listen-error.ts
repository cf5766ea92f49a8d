import { isSseError } from '../errors.js'
import { UsageError } from './io.js'

/**
 * Why `ssehub serve` could not listen, as the one line it prints (exit 2): a refused host (the
 * open-hub guard), a port in use, no permission, no such address. Other errors pass unchanged.
 */
export function listenError(error: unknown, where: { port: number; host: string }): unknown {
  if (isSseError(error)) return new UsageError(error.message)
  const code = (error as NodeJS.ErrnoException).code
  if (code === 'EADDRINUSE')
    return new UsageError(`port ${where.port} on ${where.host} is in use; pick another with --port`)
  if (code === 'EACCES')
    return new UsageError(
      `no permission to listen on ${where.host}:${where.port}; use a port above 1023`,
    )
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
    return new UsageError(`cannot listen on ${where.host}: no such local address`)
  return error
}
