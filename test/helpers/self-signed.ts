import { execFileSync } from 'node:child_process'
import { join } from 'node:path'

/**
 * Writes a self-signed certificate for localhost (EC P-256, one day) into `dir` with openssl, as
 * `c.pem` and `k.pem`; returns their paths.
 */
export function writeSelfSigned(dir: string): { cert: string; key: string } {
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-keyout',
      'k.pem',
      '-out',
      'c.pem',
    ]),
    { cwd: dir, stdio: 'ignore' },
  )
  return { cert: join(dir, 'c.pem'), key: join(dir, 'k.pem') }
}
