import { fileURLToPath } from 'node:url';

/** The profiles shipped with zanuri: <package root>/profiles, from both src/ and dist/. */
export const builtinProfilesDir = fileURLToPath(new URL('../../profiles/', import.meta.url));

/** Validated shipped profiles, written at build time next to dist/cli (absent when running from src/). */
export const bundlePath = fileURLToPath(new URL('../profiles.bundle.json', import.meta.url));
