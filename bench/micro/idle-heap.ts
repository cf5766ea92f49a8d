/**
 * Heap and RSS per idle stream of the hub server's default front, after full GCs: what an idle
 * stream costs, without the noise of a whole-process RSS slope. The server is the built package
 * of a checkout; the streams come from this process (10,000 by default, 100 topics, one client
 * id each).
 *
 * node --expose-gc --import tsx bench/micro/idle-heap.ts <checkout dir> [streams] [--no-fast-path]
 */
import { checkoutHub } from './checkout-hub.js'
import { fork } from 'node:child_process'
import { connect } from 'node:net'

const [dir, countText = '10000', flag] = process.argv.slice(2)
const count = Number(countText)

if (process.env.IDLE_HEAP_SERVER === '1') {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('run with --expose-gc')
  const server = await checkoutHub(dir!, { fastPath: flag !== '--no-fast-path' })
  const address = await server.listen(0, '127.0.0.1')
  const settle = async (): Promise<NodeJS.MemoryUsage> => {
    for (let i = 0; i < 3; i++) {
      gc()
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    return process.memoryUsage()
  }
  const before = await settle()
  process.send!({ port: address.port })
  const timer = setInterval(() => {
    if (server.hub.stats().connections < count) return
    clearInterval(timer)
    void (async () => {
      await new Promise((resolve) => setTimeout(resolve, 1000))
      const after = await settle()
      const per = (key: 'heapUsed' | 'rss'): string =>
        ((after[key] - before[key]) / count / 1024).toFixed(2)
      process.send!({ heapKiB: per('heapUsed'), rssKiB: per('rss') })
    })()
  }, 100)
} else {
  const child = fork(new URL(import.meta.url).pathname, process.argv.slice(2), {
    execArgv: ['--expose-gc', '--import', 'tsx'],
    env: { ...process.env, IDLE_HEAP_SERVER: '1' },
  })
  child.on('message', (message: { port?: number; heapKiB?: string; rssKiB?: string }) => {
    if (message.port !== undefined) void open(message.port)
    else {
      console.log(
        `${count} idle streams: heap ${message.heapKiB} KiB, RSS ${message.rssKiB} KiB per stream`,
      )
      child.kill()
      process.exit(0)
    }
  })
}

async function open(port: number): Promise<void> {
  for (let i = 0; i < count; i += 500) {
    await Promise.all(
      Array.from(
        { length: Math.min(500, count - i) },
        (_, k) =>
          new Promise<void>((resolve, reject) => {
            const socket = connect(port, '127.0.0.1', () => {
              socket.write(
                `GET /events?topic=t${(i + k) % 100}&clientId=c${i + k} HTTP/1.1\r\nHost: x\r\n\r\n`,
              )
              resolve()
            })
            socket.on('data', () => undefined)
            socket.on('error', reject)
          }),
      ),
    )
  }
}
