/** Build step (npm run build): validate the shipped profiles and write dist/profiles.bundle.json. */
import { loadDirFromFiles } from './load.js';
import { builtinProfilesDir } from './location.js';
import { writeBundle } from './bundle.js';

await writeBundle([...(await loadDirFromFiles(builtinProfilesDir)).values()]);
