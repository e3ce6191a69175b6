// npm run lint: typescript-eslint's recommended rules, and one of our own (scripts/lint/folder-index.js).
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';
import { folderIndex } from './scripts/lint/folder-index.js';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { languageOptions: { globals: globals.node } },
  {
    files: ['**/*.ts'],
    plugins: { sidecar: { rules: { 'folder-index': folderIndex } } },
    rules: {
      'sidecar/folder-index': 'error',
      // A leading underscore marks a parameter an interface requires and this implementation ignores.
      // A closure made before the one assignment reads the variable later (a counter handed out before its meter exists).
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' }],
    },
  },
  {
    // Tests read decoded JSON and YAML documents deep and loosely; the product code has no any.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
