import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser } from 'playwright-core'

/** Debian's Chromium; browser tests fail (never skip) when it is missing. */
export const CHROMIUM = process.env.SSEHUB_CHROMIUM ?? '/usr/bin/chromium'

/** Where the tests save screenshots (not committed). */
export const SCREENSHOTS = join(process.cwd(), 'test-output', 'screenshots')

/** Launches headless Chromium with the machine's flags and a fresh profile. */
export async function launchChromium(extraArgs: readonly string[] = []): Promise<{
  browser: Browser
  close(): Promise<void>
}> {
  mkdirSync(SCREENSHOTS, { recursive: true })
  // Playwright's plain launch gives Chromium a fresh, empty profile of its own (it refuses an
  // explicit --user-data-dir), deleted on close: the machine notes' fresh profile.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  })
  return {
    browser,
    async close() {
      await browser.close()
    },
  }
}
