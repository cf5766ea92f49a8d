/**
 * The hub server that bench/micro/publish-instructions.sh runs under callgrind: the built package
 * of a checkout (`<dir>/dist`), limits off, until it has taken `<publishes>` publishes.
 *
 * node --import tsx bench/micro/publish-server.ts <checkout dir> <port> <publishes>
 */
import type * as serverModule from '../../src/server/index.js'

type ServerModule = typeof serverModule
const [dir, port, count] = process.argv.slice(2)
const { createHubServer } = (await import(`${dir}/dist/server/index.js`)) as ServerModule
const server = createHubServer({
  heartbeatMs: null,
  maxConnections: null,
  maxConnectionsPerIp: null,
  maxConnectionsPerClient: null,
  publishRatePerSecond: null,
  metrics: false,
})
await server.listen(Number(port), '127.0.0.1')
process.stdout.write('ready\n')
const timer = setInterval(() => {
  if (server.hub.stats().eventsPublished >= Number(count)) {
    clearInterval(timer)
    process.exit(0)
  }
}, 50)
