/**
 * The durability proof in full (issue 15): `kill -9` of `ssehub serve` (defaults: the durable
 * store, fsync always) at a random moment in the middle of 400 publishes/s with 100 subscribers,
 * then a restart, 20 times: every acknowledged event must reach every subscriber exactly once, in
 * order, with no reset. Then the negative control (`--store memory`), which must show resets.
 * test/cli/durable-restart.test.ts runs the same round 3 times.
 *
 *   npm run build && npx tsx bench/durable/crash.ts [--rounds 20]
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { killRestartRound, type RoundResult } from '../../test/helpers/kill-restart.js'

const index = process.argv.indexOf('--rounds')
const rounds = index === -1 ? 20 : Number(process.argv[index + 1])

function row(name: string, killAfter: number, result: RoundResult): string {
  return `| ${name} | ${killAfter} | ${result.acknowledged} | ${result.failed} | ${result.delivered} | ${result.resets} | ${result.restartMs} | ${result.problems.length === 0 ? 'none' : result.problems.slice(0, 2).join('; ')} |`
}

console.log(
  '| round | killed after (acks) | acknowledged | failed publishes | events each subscriber got | subscribers reset | restart ms | problems |',
)
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |')
let failures = 0
for (let round = 1; round <= rounds; round++) {
  const dataDir = mkdtempSync(join(tmpdir(), 'ssehub-crash-'))
  const killAfter = 20 + Math.floor(Math.random() * 780)
  const result = await killRestartRound({
    args: ['--data-dir', dataDir],
    subscribers: 100,
    publishesPerSecond: 400,
    killAfterAcks: killAfter,
    afterAcks: 200,
  })
  rmSync(dataDir, { recursive: true, force: true })
  if (result.problems.length > 0 || result.resets > 0) failures++
  console.log(row(String(round), killAfter, result))
}
const control = await killRestartRound({
  args: ['--store', 'memory'],
  subscribers: 100,
  publishesPerSecond: 400,
  killAfterAcks: 200,
  afterAcks: 200,
})
console.log(row('control: --store memory', 200, control))
console.log(
  `\n${rounds - failures} of ${rounds} rounds exact; the memory control reset ${control.resets} of 100 subscribers.`,
)
process.exit(failures === 0 && control.resets > 0 ? 0 : 1)
