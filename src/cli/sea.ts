// The single executable's entry point (scripts/build-sea.ts bundles it): the launcher first,
// then the CLI, which loads only once the process will not be replaced.
import { relaunch } from './launch.ts';

relaunch();
void import('./main.ts');
