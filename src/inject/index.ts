// Sidecar injection: Kubernetes manifests and compose files, in and out again.
export { injectManifests, type Result } from './manifests.ts';
export { injectCompose } from './compose.ts';
export { resolveSettings, defaultImage, type InjectFlags, type InjectSettings, type SidecarPorts } from './settings.ts';
export { ANNOTATION, PORT_NAME, SIDECAR_CONTAINER } from './names.ts';
export { formatChange, type Change } from './where.ts';
