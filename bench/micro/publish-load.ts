/**
 * One-to-one load for bench/micro/publish-instructions.sh: 1,000 streams, one per client id, then
 * `<publishes>` publishes to those client ids in turn, 16 in flight on one keep-alive connection.
 *
 * node --import tsx bench/micro/publish-load.ts <port> <publishes>
 */
import { connect, type Socket } from 'node:net'

const [port, count] = process.argv.slice(2).map(Number) as [number, number]
const open = (): Promise<Socket> =>
  new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket))
  })
for (let i = 0; i < 1000; i++) {
  const stream = await open()
  stream.on('data', () => undefined)
  stream.write(`GET /events?clientId=c${i} HTTP/1.1\r\nHost: x\r\n\r\n`)
}
await new Promise((resolve) => setTimeout(resolve, 500))
const publisher = await open()
const request = (i: number): string => {
  const body = `{"clientId":"c${i % 1000}","data":"event ${i}"}`
  return `POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`
}
let sent = 0
let answered = 0
let text = ''
const pump = (): void => {
  while (sent < count && sent - answered < 16) publisher.write(request(sent++))
}
publisher.setEncoding('latin1')
publisher.on('data', (chunk: string) => {
  text += chunk
  for (let at = text.indexOf('HTTP/1.1 ', 1); at !== -1; at = text.indexOf('HTTP/1.1 ', 1)) {
    text = text.slice(at)
    answered++
  }
  pump()
})
// The server exits once it has taken every publish.
publisher.on('close', () => process.exit(0))
pump()
