import { hostname } from 'node:os'

/**
 * The default id of a hub node: `<hostname>:<pid>`. Stable for the life of the process and
 * readable in `/clients` and `/stats`; two processes on one host differ by pid, and containers
 * (often all pid 1) by hostname.
 */
export function defaultNodeId(): string {
  return `${hostname()}:${process.pid}`
}
