/**
 * The hub server that bench/micro/publish-instructions.sh runs under callgrind: the built package
 * of a checkout (`<dir>/dist`), limits off, until it has taken `<publishes>` publishes.
 *
 * node --import tsx bench/micro/publish-server.ts <checkout dir> <port> <publishes>
 */
import { checkoutHub } from './checkout-hub.js'

const [dir, port, count] = process.argv.slice(2)
const server = await checkoutHub(dir!)
await server.listen(Number(port), '127.0.0.1')
process.stdout.write('ready\n')
const timer = setInterval(() => {
  if (server.hub.stats().eventsPublished >= Number(count)) {
    clearInterval(timer)
    process.exit(0)
  }
}, 50)
