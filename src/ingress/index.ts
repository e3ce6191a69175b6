export { ClientBody, type BodyHead, type BodyLimits } from './body.ts';
export { runStages, type RequestContext, type Stage } from './context.ts';
export { createIngress, type Ingress, type IngressOptions } from './server.ts';
export { listenerTimeouts, type ClientTimeouts } from './listener.ts';
export { requestTarget } from './target.ts';
export { requestIdFrom } from './request-id.ts';
export { loadTls, watchTls, type TlsFiles } from './tls.ts';
export { combineObservers, type RequestObserver } from './observer.ts';
