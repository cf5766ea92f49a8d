/**
 * `npm test`'s first step (the `pretest` script): the suite needs a real `redis-server` (the Redis
 * broker tests start their own) and `redis-cli` (the cluster tests join their nodes with it), a
 * real Chromium (the browser tests drive it through playwright-core) and a real nginx (the proxy
 * tests). On a fresh Debian machine that has only
 * Node, run as root, this installs what is missing with apt-get and says so; elsewhere it stops
 * with one line naming the exact command.
 *
 * The browser is /usr/bin/chromium unless SSEHUB_CHROMIUM names another (any Chromium or Chrome
 * that playwright-core can drive). SSEHUB_SKIP_TEST_DEPS=1 skips this check entirely.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { accessSync, constants } from 'node:fs'

if (process.env.SSEHUB_SKIP_TEST_DEPS === '1') process.exit(0)

const onPath = (command: string): boolean =>
  spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0
const executable = (path: string): boolean => {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

const chromium = process.env.SSEHUB_CHROMIUM ?? '/usr/bin/chromium'
const missing: { what: string; packages: string[] }[] = []
if (!onPath('redis-server')) missing.push({ what: 'redis-server', packages: ['redis-server'] })
// The Redis Cluster tests join their nodes with `redis-cli --cluster create` (Debian: redis-tools).
if (!onPath('redis-cli')) missing.push({ what: 'redis-cli', packages: ['redis-tools'] })
// The proxy tests run a real nginx (test/proxy/nginx.test.ts).
if (!executable('/usr/sbin/nginx')) missing.push({ what: 'nginx', packages: ['nginx-light'] })
if (!executable(chromium)) {
  if (process.env.SSEHUB_CHROMIUM !== undefined) {
    console.error(`ssehub tests: SSEHUB_CHROMIUM=${chromium} is not an executable; fix the path.`)
    process.exit(1)
  }
  missing.push({ what: 'Chromium (/usr/bin/chromium)', packages: ['chromium'] })
}
if (missing.length === 0) process.exit(0)

const packages = missing.flatMap((item) => item.packages)
const command = `apt-get install -y ${packages.join(' ')}`
const root = typeof process.getuid === 'function' && process.getuid() === 0
if (!root || !onPath('apt-get')) {
  console.error(
    `ssehub tests need ${missing.map((item) => item.what).join(' and ')}: run \`sudo ${command}\` (Debian/Ubuntu), or set SSEHUB_CHROMIUM to a Chromium binary.`,
  )
  process.exit(1)
}
console.error(`ssehub tests: installing ${packages.join(', ')} (${command}) ...`)
try {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
  execFileSync('apt-get', ['install', '-y', '-qq', ...packages], { stdio: 'inherit', env })
} catch {
  console.error(`ssehub tests: \`${command}\` failed; run it yourself and retry.`)
  process.exit(1)
}
console.error(`ssehub tests: installed ${packages.join(', ')}.`)
