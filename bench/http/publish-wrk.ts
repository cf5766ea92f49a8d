/**
 * Publishes per second through `POST /publish`, with and without the socket-level fast path, and
 * with 0 or 1,000 client-id streams receiving the events (round-robin): the hub on core 0, wrk
 * (1 thread, 16 connections) and the streams on core 1. Needs `wrk` (`apt-get install wrk`) and a
 * build (`npm run build`). Writes a Markdown table to stdout.
 *
 * npx tsx bench/http/publish-wrk.ts [--seconds 5] [--runs 3]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { openStreams } from './streams.js'

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '5' }, runs: { type: 'string', default: '3' } },
})
const seconds = Number(values.seconds)
const runs = Number(values.runs)
if (!Number.isSafeInteger(seconds) || seconds < 1 || !Number.isSafeInteger(runs) || runs < 1) {
  process.stderr.write('--seconds and --runs expect positive integers\n')
  process.exit(2)
}
if (spawnSync('wrk', ['--version']).error !== undefined) {
  process.stderr.write('wrk is not installed: apt-get install wrk\n')
  process.exit(1)
}
const pinned = spawnSync('taskset', ['-c', '0', 'true']).status === 0
// This process reads the streams: it goes to core 1 with wrk, away from the hub.
if (pinned) spawnSync('taskset', ['-pc', '1', String(process.pid)])
const on = (core: number, command: string, args: string[]): [string, string[]] =>
  pinned ? ['taskset', ['-c', String(core), command, ...args]] : [command, args]

/** Starts bench/http/hub-child.ts; resolves with the child and its port (20 s at most). */
function startHub(fastPath: boolean): Promise<{ child: ChildProcess; port: number }> {
  const script = fileURLToPath(new URL('./hub-child.ts', import.meta.url))
  const [command, args] = on(0, process.execPath, ['--import', import.meta.resolve('tsx'), script])
  const child = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    env: { ...process.env, FAST_PATH: fastPath ? '1' : '0' },
  })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the hub did not start in 20 s')), 20_000)
    let out = ''
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk
      const match = /listening (\d+)/.exec(out)
      if (match !== null) {
        clearTimeout(timer)
        resolve({ child, port: Number(match[1]) })
      }
    })
    child.once('exit', (code) => reject(new Error(`the hub exited with ${code}`)))
  })
}

const dir = mkdtempSync(join(tmpdir(), 'ssehub-wrk-'))
const lua = join(dir, 'publish.lua')
writeFileSync(
  lua,
  `local n = 0
request = function()
  n = n + 1
  local body = '{"clientId":"client-' .. (n % 1000) .. '","data":"' .. n .. '"}'
  return wrk.format("POST", "/publish", {["Content-Type"] = "application/json"}, body)
end
`,
)

const rows: string[] = []
try {
  for (const fastPath of [false, true]) {
    for (const streams of [0, 1000]) {
      const results: number[] = []
      for (let run = 0; run < runs; run++) {
        const { child, port } = await startHub(fastPath)
        const sockets = await openStreams(
          port,
          Array.from({ length: streams }, (_, i) => `/events?clientId=client-${i}`),
        )
        const [command, args] = on(1, 'wrk', [
          ...['-t1', '-c16', `-d${seconds}s`, '-s', lua],
          `http://127.0.0.1:${port}/publish`,
        ])
        const wrk = await new Promise<string>((resolve) => {
          let out = ''
          const p = spawn(command, args)
          p.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
          p.once('exit', () => resolve(out))
        })
        const perSecond = Number(/Requests\/sec:\s+([\d.]+)/.exec(wrk)?.[1] ?? NaN)
        const failures = /Non-2xx or 3xx responses: (\d+)/.exec(wrk)?.[1]
        if (failures !== undefined) throw new Error(`${failures} publishes failed: ${wrk}`)
        results.push(perSecond)
        for (const socket of sockets) socket.destroy()
        child.kill('SIGTERM')
      }
      const label = `${fastPath ? 'fast path' : 'node:http only'}, ${streams} streams`
      rows.push(
        `| ${label} | ${results.map((r) => Math.round(r).toLocaleString('en')).join(' / ')} |`,
      )
      process.stderr.write(`${label}: ${results.map(Math.round).join(', ')} publishes/s\n`)
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
process.stdout.write(
  [
    `\`npx tsx bench/http/publish-wrk.ts --seconds ${seconds} --runs ${runs}\` (wrk -t1 -c16, ` +
      `hub on core 0${pinned ? '' : ' (taskset absent: not pinned)'}), publishes/s per run:`,
    '',
    '| hub | publishes/s |',
    '| --- | --: |',
    ...rows,
    '',
  ].join('\n'),
)
process.exit(0)
