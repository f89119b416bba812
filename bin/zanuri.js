#!/usr/bin/env node
// Runs the split bundle (dist/lazy/, npm run build): it starts faster than the tsc output it is
// built from (see scripts/bundle.mjs). When the tsc output is newer (a `tsc` after the last full
// build) or the bundle is missing, the bundle would be stale: the tsc output runs instead.
// Node 22.1+ also keeps compiled code between runs; Node 20 has no such cache.
import module from 'node:module';
import { statSync } from 'node:fs';

const mtime = (path) => statSync(new URL(path, import.meta.url), { throwIfNoEntry: false })?.mtimeMs ?? -1;
const bundled = mtime('../dist/lazy/zanuri.mjs');
module.enableCompileCache?.();
await import(bundled >= 0 && bundled >= mtime('../dist/cli/main.js') ? '../dist/lazy/zanuri.mjs' : '../dist/cli/main.js');
