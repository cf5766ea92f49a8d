/**
 * Through a real nginx (Debian's), with the configuration docs/deployment.md ships, read from the
 * page itself: `ssehub serve` at its defaults holds many streams from the proxy's one address and
 * a broadcast reaches every one; with `--trust-proxy` and a per-IP limit, the limit applies to
 * the forwarded address. 2,000 streams in `npm test`; SSEHUB_PROXY_STREAMS=10000 for the figure
 * the docs give. Skipped where nginx is not installed.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { startCliHub, type CliProcess } from '../helpers/cli.js'
import { freePort } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait.js'

const NGINX = '/usr/sbin/nginx'
const STREAMS = Number(process.env.SSEHUB_PROXY_STREAMS ?? 2_000)

/** The fenced nginx block of docs/deployment.md whose first line is `# ssehub: <name>`. */
function docBlock(name: string): string {
  const doc = readFileSync(new URL('../../docs/deployment.md', import.meta.url), 'utf8')
  for (const match of doc.matchAll(/```nginx\n([\s\S]*?)```/g)) {
    if (match[1]!.startsWith(`# ssehub: ${name}`)) return match[1]!
  }
  throw new Error(`docs/deployment.md has no nginx block "# ssehub: ${name}"`)
}

interface Nginx {
  readonly port: number
  stop(): Promise<void>
}

/** Starts nginx with the documented configuration, proxying to the hub at `hubPort`. */
async function startNginx(hubPort: number): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-nginx-'))
  const port = await freePort()
  const main = docBlock('nginx.conf, main context')
  const site = docBlock('conf.d/ssehub.conf, http context')
  // Only the addresses change: the hub's port, and nginx's own on loopback.
  const served = site
    .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${hubPort};`)
    .replace('listen 80;', `listen 127.0.0.1:${port} backlog=4096;`)
  expect(served).not.toBe(site)
  writeFileSync(join(dir, 'ssehub.conf'), served)
  // What Debian's /etc/nginx/nginx.conf provides around them, in a scratch directory.
  const conf = `daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
${main}
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/ssehub.conf;
}
`
  writeFileSync(join(dir, 'nginx.conf'), conf)
  const child: ChildProcess = spawn(
    NGINX,
    ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let err = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk))
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`nginx exited: ${err}`)
      try {
        return (await fetch(`http://127.0.0.1:${port}/healthz`)).ok
      } catch {
        return false
      }
    },
    'nginx to proxy',
    10_000,
  )
  return {
    port,
    async stop() {
      child.kill('SIGTERM')
      await exited
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** An event stream read from a raw socket: cheap enough to hold thousands in one process. */
interface RawStream {
  readonly socket: Socket
  /** The status of the response, once its head arrived. */
  status: number | null
  /** Whether `marker` arrived. */
  received: boolean
}

function openRaw(port: number, path: string, marker: string, headers = ''): Promise<RawStream> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const stream: RawStream = { socket, status: null, received: false }
    let tail = ''
    socket.setEncoding('utf8')
    socket.once('error', reject)
    socket.once('connect', () =>
      socket.write(`GET ${path} HTTP/1.1\r\nHost: hub.test\r\n${headers}\r\n`),
    )
    socket.on('data', (chunk: string) => {
      const text = tail + chunk
      if (stream.status === null) {
        const head = /^HTTP\/1\.1 (\d{3})/.exec(text)
        if (head === null) {
          tail = text
          return
        }
        stream.status = Number(head[1])
        resolve(stream)
      }
      if (text.includes(marker)) stream.received = true
      tail = text.slice(-marker.length)
    })
    socket.once('close', () => {
      if (stream.status === null) reject(new Error('closed before a response'))
    })
  })
}

async function openMany(port: number, count: number, marker: string): Promise<RawStream[]> {
  const streams: RawStream[] = []
  const batch = 250
  for (let at = 0; at < count; at += batch) {
    const size = Math.min(batch, count - at)
    streams.push(
      ...(await Promise.all(
        Array.from({ length: size }, () => openRaw(port, '/events?topic=proxied', marker)),
      )),
    )
  }
  return streams
}

const cleanups: (() => Promise<void> | void)[] = []
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})

async function hubBehindNginx(args: string[]): Promise<{ hub: string; proxy: string }> {
  const { url, cli } = await startCliHub(args)
  cleanups.push(() => stop(cli))
  const nginx = await startNginx(Number(new URL(url).port))
  cleanups.push(() => nginx.stop())
  return { hub: url, proxy: `http://127.0.0.1:${nginx.port}` }
}

async function stop(cli: CliProcess): Promise<void> {
  cli.child.kill('SIGTERM')
  await cli.exited
}

// Never skipped: `npm test` installs nginx when it is missing (scripts/test-deps.ts).
describe('through nginx, with the documented configuration', () => {
  it('has nginx installed', () => {
    expect(existsSync(NGINX), `${NGINX} is missing: apt-get install -y nginx-light`).toBe(true)
  })

  it(
    `holds ${STREAMS} streams from the proxy's one address at the defaults, and a broadcast reaches all`,
    async () => {
      const started = Date.now()
      const { hub, proxy } = await hubBehindNginx([])
      const marker = `broadcast-${process.pid}-${Date.now()}`
      const streams = await openMany(Number(new URL(proxy).port), STREAMS, marker)
      cleanups.push(() => {
        for (const stream of streams) stream.socket.destroy()
      })
      expect(streams.filter((stream) => stream.status === 200).length).toBe(STREAMS)
      await waitFor(
        async () =>
          ((await (await fetch(`${hub}/stats`)).json()) as { connections: number }).connections ===
          STREAMS,
        `${STREAMS} connections at the hub`,
        30_000,
      )
      const opened = Date.now()
      const answer = await fetch(`${hub}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 'proxied', data: marker }),
      })
      expect(answer.status).toBe(200)
      await waitFor(
        () => streams.every((stream) => stream.received),
        'the broadcast on every stream',
        30_000,
      ).catch(() => undefined)
      const missed = streams.filter((stream) => !stream.received).length
      console.log(
        `nginx: ${STREAMS} streams open in ${opened - started} ms, broadcast delivered in ${Date.now() - opened} ms, ${missed} missed`,
      )
      expect(missed).toBe(0)
    },
    Math.max(60_000, STREAMS * 30),
  )

  it('applies the per-IP limit to the forwarded address with --trust-proxy', async () => {
    const { hub, proxy } = await hubBehindNginx([
      '--trust-proxy',
      '127.0.0.1',
      '--max-connections-per-ip',
      '2',
    ])
    const port = Number(new URL(proxy).port)
    const from = (address: string): Promise<RawStream> =>
      openRaw(port, '/events?topic=t', 'never', `X-Forwarded-For: ${address}\r\n`)
    const a = [await from('203.0.113.1'), await from('203.0.113.1'), await from('203.0.113.1')]
    const b = await from('203.0.113.2')
    // Behind the same proxy, with no header: the proxy adds the client's own address.
    const local = await openRaw(port, '/events?topic=t', 'never')
    cleanups.push(() => {
      for (const stream of [...a, b, local]) stream.socket.destroy()
    })
    expect([...a, b, local].map((stream) => stream.status)).toEqual([200, 200, 429, 200, 200])
    const listed = (await (await fetch(`${hub}/clients`)).json()) as {
      connections: { remoteAddress: string }[]
    }
    expect(listed.connections.map((c) => c.remoteAddress).sort()).toEqual([
      '127.0.0.1',
      '203.0.113.1',
      '203.0.113.1',
      '203.0.113.2',
    ])
  })
})
