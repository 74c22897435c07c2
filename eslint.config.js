import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const routesMayNotTouchTheWarehouse = {
  patterns: [
    { group: ['**/warehouse/query/**', '**/warehouse/db*'], message: 'Routes go through server/services.' },
  ],
};

export default tseslint.config(
  {
    ignores: ['node_modules/**', 'data/**', 'tests/artifacts/**', 'views/public/**', '**/*.cjs', '**/*.mjs'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['warehouse/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['../*', '!../core/*'], message: 'warehouse/core imports nothing of ours.' }] },
      ],
    },
  },
  {
    files: ['server/api/**/*.ts', 'server/portal/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', routesMayNotTouchTheWarehouse] },
  },
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
);
