import { defineConfig } from 'vitest/config'

// The HTTP API's suites run once per front: the socket-level fast front and node:http alone
// (test/helpers/hub-server.ts reads SSEHUB_TEST_FRONT). Everything else runs once.
const twoFronts = ['test/server/**/*.test.ts', 'test/security/**/*.test.ts']

export default defineConfig({
  test: {
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: twoFronts },
      },
      {
        extends: true,
        test: { name: 'fast-front', include: twoFronts, env: { SSEHUB_TEST_FRONT: 'fast' } },
      },
      {
        extends: true,
        test: {
          name: 'node-front',
          include: twoFronts,
          // The differential and fast-front suites already compare both fronts in one run.
          exclude: ['test/server/differential.test.ts', 'test/server/fast-path.test.ts'],
          env: { SSEHUB_TEST_FRONT: 'node' },
        },
      },
    ],
  },
})
