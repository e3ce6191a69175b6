// The entry point of the bundled CLI (scripts/bundle.ts): bin/agent-sidecar.js and the single
// executable both run it. The launcher first, then the CLI, which loads only once the process
// will not be replaced.
import { relaunch } from './launch.ts';

relaunch();
void import('./main.ts');
