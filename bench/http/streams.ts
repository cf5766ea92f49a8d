/**
 * Event streams the HTTP benchmarks hold open against bench/http/hub-child.ts: raw sockets that
 * read and drop what they get, opened in waves so that the hub's accept backlog is never flooded.
 */
import { connect, type Socket } from 'node:net'

/**
 * Opens one stream per path on 127.0.0.1:`port`, at most 500 at a time; resolves once each got
 * its first bytes (the hub answered it), rejects at the first socket error.
 */
export async function openStreams(port: number, paths: readonly string[]): Promise<Socket[]> {
  const sockets: Socket[] = []
  for (let opened = 0; opened < paths.length; opened += 500) {
    const wave = paths.slice(opened, opened + 500)
    sockets.push(
      ...(await Promise.all(
        wave.map(
          (path) =>
            new Promise<Socket>((resolve, reject) => {
              const socket = connect(port, '127.0.0.1')
              socket.once('error', reject)
              socket.write(`GET ${path} HTTP/1.1\r\nHost: bench\r\n\r\n`)
              socket.once('data', () => resolve(socket))
              socket.on('data', () => undefined)
            }),
        ),
      )),
    )
  }
  return sockets
}
