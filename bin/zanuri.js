#!/usr/bin/env node
// Node 22.1+ keeps compiled code between runs (faster start); Node 20 has no such cache.
import module from 'node:module';

module.enableCompileCache?.();
await import('../dist/cli/main.js');
