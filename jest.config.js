/** @type {import('jest').Config} */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  // Builds or finds the Temporal CLI and bundles the workflows once for all test files.
  globalSetup: '<rootDir>/tests/support/global-setup.ts',
  // Three files at a time on two cores (most of a file's time is waiting on real clocks and
  // processes), the longest first, so that no worker is left alone with a long file at the end.
  maxWorkers: 3,
  testSequencer: '<rootDir>/tests/support/slowest-first.mjs',
  setupFiles: ['<rootDir>/tests/support/quiet-runtime.ts'],
  testTimeout: 60_000,
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
};
