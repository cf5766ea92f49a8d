/**
 * The hub the HTTP benchmarks start: the built package (`npm run build`), limits lifted, on a free
 * loopback port; `FAST_PATH=0` turns the socket-level fast path off. Prints `listening <port>`;
 * answers `memory` on its IPC channel with process.memoryUsage() after a full GC (when run with
 * --expose-gc).
 */
import { createHubServer } from '../../dist/server/index.js'

const hubServer = createHubServer({
  maxConnections: null,
  maxConnectionsPerIp: null,
  maxConnectionsPerClient: null,
  publishRatePerSecond: null,
  heartbeatMs: null,
  metrics: false,
  fastPath: process.env.FAST_PATH !== '0',
})
const { port } = await hubServer.listen(0, '127.0.0.1')
process.stdout.write(`listening ${port}\n`)
process.on('message', (message: unknown) => {
  if (message !== 'memory') return
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  gc?.()
  process.send?.({ ...process.memoryUsage(), streams: hubServer.hub.stats().connections })
})
process.on('SIGTERM', () => process.exit(0))
process.on('disconnect', () => process.exit(0))
