export { runStages, type RequestContext, type Stage } from './context.ts';
export { createIngress, type Ingress, type IngressOptions } from './server.ts';
export { requestTarget } from './target.ts';
export { requestIdFrom } from './request-id.ts';
export { loadTls, watchTls, type TlsFiles } from './tls.ts';
export { combineObservers, type RequestObserver } from './observer.ts';
