export { FILE_LIMITS, FileReadError, readFileCapped, readStreamCapped, readTextCapped, readTextCappedAsync } from './read.ts';
export { MAX_YAML_ALIAS_COUNT, MAX_YAML_DEPTH, parseYaml, YamlError } from './yaml.ts';
export { writeFileAtomic } from './write-atomic.ts';
