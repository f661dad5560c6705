import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'prisma/generated/', 'coverage/', '.data/'] },
  eslint.configs.recommended,
  { files: ['**/*.js'], languageOptions: { globals: { module: 'readonly', require: 'readonly' } } },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // Workflows are replayed: no I/O, no Node modules, no clients.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*', 'fs', 'path', 'crypto', 'http', 'https', 'child_process'], message: 'workflows must not do I/O' },
            { group: ['**/src/**', '**/prisma/**', '@prisma/*', 'pg', 'express'], message: 'workflows only orchestrate' },
            { group: ['../activities', '../activities/index'], importNames: ['createActivities'], message: 'import activity types only' },
          ],
        },
      ],
    },
  },
  {
    files: ['activities/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/src/**', '**/workflows/**'], message: 'activities never import from src/ or workflows/' }] },
      ],
    },
  },
);
