import { fileURLToPath } from 'node:url'

/**
 * The path of one of the bench's built files (`main.js`, `worker.js`, `peers/…`). The bench
 * process, its worker threads and the servers it starts run as plain JavaScript under plain node,
 * no loader: the figures are those of the code users run. From dist/ (the package) that is the
 * file beside this module; when this module runs as TypeScript (tests, tsx in a checkout), it is
 * the same file in the checkout's dist/, which `npm run build` makes.
 */
export function builtFile(name: string): string {
  const here = import.meta.url
  const url = here.endsWith('.ts')
    ? new URL(`../../dist/bench/${name}`, here)
    : new URL(`./${name}`, here)
  return fileURLToPath(url)
}
